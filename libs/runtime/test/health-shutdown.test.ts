import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { startHealthServer } from '../src/health.js';
import { installShutdown } from '../src/shutdown.js';
import { readServiceVersion } from '../src/version.js';

const silent = pino({ level: 'silent' });

describe('health server', () => {
  it('answers 200 when every check passes and 503 when one fails or throws', async () => {
    let dbOk = true;
    const checks = {
      nats: () => ({ ok: true }),
      db: async () => ({ ok: dbOk, detail: dbOk ? 'up' : 'connection refused' }),
    };
    const server = await startHealthServer(0, checks, '127.0.0.1');
    try {
      const url = `http://127.0.0.1:${server.port}`;
      let res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok', checks: { nats: { ok: true }, db: { ok: true, detail: 'up' } } });
      dbOk = false;
      res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'failing', checks: { db: { ok: false } } });
      dbOk = true;
      (checks as Record<string, () => unknown>)['broken'] = () => {
        throw new Error('boom');
      };
      res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ checks: { broken: { ok: false, detail: 'boom' } } });
      expect((await fetch(`${url}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('shutdown', () => {
  it('runs steps once, newest first, and goes on past a failing step', async () => {
    const order: string[] = [];
    const shutdown = installShutdown(silent, { exit: false, timeoutMs: 2000 });
    shutdown.add('nats', () => {
      order.push('nats');
    });
    shutdown.add('broken', () => {
      throw new Error('boom');
    });
    shutdown.add('consumer', async () => {
      order.push('consumer');
    });
    await Promise.all([shutdown.run('test'), shutdown.run('again')]);
    expect(order).toEqual(['consumer', 'nats']);
  });

  it('runs on SIGTERM', async () => {
    const shutdown = installShutdown(silent, { exit: false });
    let ran = false;
    shutdown.add('step', () => {
      ran = true;
    });
    process.kill(process.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    expect(ran).toBe(true);
  });

  it('gives up on a stuck step after the overall timeout', async () => {
    const shutdown = installShutdown(silent, { exit: false, timeoutMs: 100 });
    shutdown.add('stuck', () => new Promise(() => undefined));
    const started = Date.now();
    await shutdown.run('test');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('version', () => {
  it('reads a semver version', () => {
    expect(readServiceVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
