// Free loopback ports for test servers. The port is released before the server binds it, so a
// tiny race remains; starters retry once if the bind fails.
export { freePort, portIsHeld } from '@tidemark/runtime';
