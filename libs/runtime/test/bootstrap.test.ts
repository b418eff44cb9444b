import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, type NatsTestServer } from '@tidemark/testkit';
import { STREAMS } from '@tidemark/contracts';
import { bootstrap } from '../src/bootstrap.js';

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
});
