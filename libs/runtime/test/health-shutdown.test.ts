import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { overallStatus, startHealthServer } from '../src/health.js';
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
    const server = await startHealthServer(0, { health: checks, readiness: {} }, '127.0.0.1');
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

describe('health server: degraded parts and readiness', () => {
  it('a degraded part keeps /healthz at 200 with status degraded; /readyz waits for its readiness checks and names what is missing', async () => {
    let walUp = false;
    let consumerBound = false;
    const health = {
      nats: () => ({ ok: true }),
      'wal:main': () => (walUp ? { ok: true } : { ok: false, degraded: true, detail: { receiverUp: false } }),
    };
    const readiness = { 'consumer:agent-backups': () => ({ ok: consumerBound, detail: { state: consumerBound ? 'bound' : 'binding' } }) };
    const server = await startHealthServer(0, { health, readiness }, '127.0.0.1');
    try {
      const url = `http://127.0.0.1:${server.port}`;
      let res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: 'degraded', degraded: ['wal:main'], checks: { 'wal:main': { ok: false, degraded: true, detail: { receiverUp: false } } } });
      res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'failing', ready: false, notReady: ['consumer:agent-backups'], degraded: ['wal:main'] });
      consumerBound = true;
      res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(200);
      // Degraded parts do not make the service unready: they are listed.
      expect(await res.json()).toMatchObject({ status: 'degraded', ready: true, degraded: ['wal:main'] });
      walUp = true;
      res = await fetch(`${url}/healthz`);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ status: 'ok' });
      expect(body).not.toHaveProperty('degraded');
      // Readiness checks are not part of liveness: /healthz never lists them.
      expect(Object.keys(body['checks'] as object)).toEqual(['nats', 'wal:main']);
    } finally {
      await server.close();
    }
  });

  it('overallStatus: failing beats degraded beats ok', () => {
    expect(overallStatus([{ ok: true }, { ok: false, degraded: true }])).toBe('degraded');
    expect(overallStatus([{ ok: false }, { ok: false, degraded: true }])).toBe('failing');
    expect(overallStatus([{ ok: true }])).toBe('ok');
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
