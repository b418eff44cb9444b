import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startNats, type NatsTestServer } from '@tidemark/testkit';
import { ArtifactStored, EVENTS_STREAM, STREAMS } from '@tidemark/contracts';
import { bootstrap } from '../src/bootstrap.js';
import { ack, runConsumer } from '../src/consumer.js';
import { ensureConsumer } from '../src/nats.js';
import { eventually, quietLogger } from './helpers.js';

let server: NatsTestServer;

beforeAll(async () => {
  server = await startNats();
});

afterAll(async () => {
  await server?.stop();
});

describe('bootstrap', () => {
  it('connects, creates the streams, serves health and drains NATS on shutdown', async () => {
    const context = await bootstrap('runtime-test', {
      exit: false,
      env: { TIDEMARK_NATS_URL: server.url, TIDEMARK_HEALTH_PORT: '0', TIDEMARK_LOG_LEVEL: 'silent', TIDEMARK_INSTANCE_ID: 'test-1', TIDEMARK_ACK_WAIT_MS: '2000' },
    });
    expect(context.instanceId).toBe('test-1');
    expect(context.ackWaitMs).toBe(2000);
    expect(context.maxDeliver).toBe(5);
    for (const spec of STREAMS) expect((await context.jsm.streams.info(spec.name)).config.name).toBe(spec.name);
    let healthy = true;
    context.addHealthCheck('db', () => ({ ok: healthy }));
    context.markStarted();
    const health = `http://127.0.0.1:${context.healthPort}/readyz`;
    let res = await fetch(health);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ checks: { nats: { ok: true }, db: { ok: true } } });
    healthy = false;
    res = await fetch(health);
    expect(res.status).toBe(503);
    const order: string[] = [];
    context.shutdown.add('consumer', () => {
      order.push(context.nc.isClosed() ? 'consumer after nats' : 'consumer');
    });
    await context.shutdown.run('test');
    expect(order).toEqual(['consumer']);
    expect(context.nc.isClosed()).toBe(true);
    await expect(fetch(health)).rejects.toThrow();
  });

  it('rejects a bad number in the environment with a message naming the variable', async () => {
    await expect(bootstrap('runtime-test', { exit: false, env: { TIDEMARK_NATS_URL: server.url, TIDEMARK_MAX_DELIVER: 'many', TIDEMARK_LOG_LEVEL: 'silent' } }))
      .rejects.toThrow(/TIDEMARK_MAX_DELIVER/);
  });

  it('is not ready while NATS is down at start, nor before main.ts has wired, nor while a consumer cannot bind; then it is', async () => {
    const natsPort = await freePort();
    const healthPort = await freePort();
    const starting = bootstrap('runtime-test', {
      exit: false,
      env: { TIDEMARK_NATS_URL: `nats://127.0.0.1:${natsPort}`, TIDEMARK_HEALTH_PORT: String(healthPort), TIDEMARK_LOG_LEVEL: 'silent' },
    });
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
      return { status: res.status, body: (await res.json()) as { ready: boolean; notReady?: string[]; checks: Record<string, { ok: boolean; detail?: unknown }> } };
    };
    // The health server answers before NATS is reachable, and says why it is not ready.
    const waiting = await eventually(() => readyz().catch(() => undefined), 10_000, 'the health server');
    expect(waiting.status).toBe(503);
    expect(waiting.body.notReady).toEqual(expect.arrayContaining(['nats', 'start-up']));
    expect(waiting.body.checks['start-up']?.detail).toMatch(/connecting to nats at nats:\/\/127\.0\.0\.1:\d+/);

    const late = await startNats({ port: natsPort });
    try {
      const context = await starting;
      // Connected and streams ensured, but main.ts has not wired its consumers yet.
      let answer = await readyz();
      expect(answer.status).toBe(503);
      expect(answer.body.notReady).toEqual(['start-up']);

      const durable = 'readiness-test';
      const consumer = runConsumer({
        js: context.js, stream: EVENTS_STREAM.name, durable, schema: ArtifactStored, handler: async () => ack(),
        logger: quietLogger, kind: 'event', publisher: context.publisher, fetchExpiresMs: 1000,
      });
      context.watchConsumer(consumer);
      context.markStarted();
      // Its durable does not exist yet: it cannot bind.
      answer = await eventually(async () => {
        const a = await readyz();
        return (a.body.checks[`consumer:${durable}`]?.detail as { lastError?: string } | undefined)?.lastError ? a : undefined;
      }, 10_000, 'a failed bind');
      expect(answer.status).toBe(503);
      expect(answer.body.notReady).toEqual([`consumer:${durable}`]);
      expect(answer.body.checks[`consumer:${durable}`]?.detail).toMatchObject({ state: 'binding', stream: EVENTS_STREAM.name });

      await ensureConsumer(context.jsm, EVENTS_STREAM.name, durable, 'artifact.stored.>');
      answer = await eventually(async () => {
        const a = await readyz();
        return a.status === 200 ? a : undefined;
      }, 15_000, 'readiness after the bind');
      expect(answer.body).toMatchObject({ ready: true, checks: { nats: { ok: true }, [`consumer:${durable}`]: { ok: true, detail: { state: 'bound' } } } });

      await consumer.stop();
      answer = await readyz();
      expect(answer.status).toBe(503);
      expect(answer.body.checks[`consumer:${durable}`]?.detail).toMatchObject({ state: 'stopped' });
      await context.shutdown.run('test');
    } finally {
      await late.stop();
    }
  });
});
