// Free loopback ports for test servers. The port is released before the server binds it, so a
// tiny race remains; starters retry once if the bind fails.
import { createServer } from 'node:net';

export { freePort } from '@tidemark/runtime';

/** Whether some process listens on `port` of `host`: binding it fails with EADDRINUSE. */
export function portIsHeld(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(true) : reject(error)));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}
