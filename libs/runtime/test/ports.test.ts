import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../src/ports.js';

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
