// Free loopback ports for test servers. The port is released before the server binds it, so a
// tiny race remains; starters retry once if the bind fails.
import { freePort, portIsHeld } from '@tidemark/runtime';

export { freePort, portIsHeld };

/**
 * The first of `count` consecutive free ports (scripts/up.mjs gives each service base + i): a
 * single free port says nothing about the ones after it, which other tests' sockets may hold.
 */
export async function freePortRange(count: number): Promise<number> {
  for (let tries = 0; tries < 50; tries += 1) {
    const base = await freePort();
    if (base + count > 65535) continue;
    let free = true;
    for (let port = base + 1; port < base + count && free; port += 1) free = !(await portIsHeld(port));
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
