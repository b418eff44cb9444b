// The port is released before the caller's server binds it, so another process may take it
// meanwhile: callers that start a server on it retry with another port when the bind fails.
import { createServer } from 'node:net';

/** Asks the kernel for an unused TCP port on `host` (127.0.0.1 by default) and releases it. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close(() => reject(new Error(`could not read the port bound on ${host}`)));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Whether some process listens on `port` of `host`: binding it fails with EADDRINUSE. Other bind errors reject. */
export function portIsHeld(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(true) : reject(error)));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}
