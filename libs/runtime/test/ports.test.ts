import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, portIsHeld } from '../src/ports.js';

const bind = (port: number, host: string) =>
  new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, host, () => server.close(() => resolve()));
  });

describe('freePort', () => {
  it('returns a port that is released and can be bound at once', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await bind(port, '127.0.0.1');
  });

  it('binds on the host it is given', async () => {
    const port = await freePort('0.0.0.0');
    await bind(port, '0.0.0.0');
  });

  it('rejects a host it cannot bind', async () => {
    await expect(freePort('192.0.2.1')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });
});

describe('portIsHeld', () => {
  it('tells a port someone listens on from a free one', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      expect(await portIsHeld(port)).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await portIsHeld(port)).toBe(false);
  });

  it('rejects a bind that fails for another reason', async () => {
    await expect(portIsHeld(1, '192.0.2.1')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });
});
