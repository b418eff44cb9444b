// Real NATS and a real HTTP webhook: a VerifyFailed event becomes one alert on alert.> and one
// webhook call, even when the event is published twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { Alert, EVENTS_STREAM, STREAMS, VerifyFailed, VerifyPassed, consumers, decode, filters, subjects } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { createEventPublisher, createLogger, ensureStreams } from '@tidemark/runtime';
import { eventually, startNats, type NatsTestServer } from '@tidemark/testkit';
import { startAlerter, type RunningAlerter } from '../src/index.js';

const logger = createLogger('alerter-test', { TIDEMARK_LOG_LEVEL: 'warn' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('alerter with real NATS', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let webhook: Server;
  let alerter: RunningAlerter | undefined;
  const posts: { path: string; body: { text: string; blocks: unknown[] } }[] = [];

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
    webhook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    await alerter?.stop();
    await nc?.close();
    await server?.stop();
    await new Promise((resolve) => webhook?.close(resolve));
  });

  it('turns a VerifyFailed event into one alert on alert.> and one webhook call', async () => {
    const { port } = webhook.address() as AddressInfo;
    const config = parseConfig(`
alerts:
  webhooks: [{ url: "http://127.0.0.1:${port}/hooks/T000/B000/secret", minSeverity: warning }]
  dedupeWindowMinutes: 60
`, 'test.yaml', {});
    const js = nc.jetstream();
    const publisher = createEventPublisher(js);
    alerter = await startAlerter(config, { js, jsm, logger, publisher });

    const received: Alert[] = [];
    const sub = nc.subscribe(filters.alerts, { callback: (_err, msg) => received.push(Alert.parse(decode(msg.data, msg.headers))) });

    const event: VerifyFailed = {
      schemaVersion: 1, engine: 'pg', target: 'main', requestId: 'req-1', occurredAt: new Date().toISOString(),
      artifactId: 'pg-main-a1', durationMs: 1500,
      checks: [{ name: 'vector-probes', ok: false, detail: 'top-k differs' }],
      error: { code: 'VERIFY_MISMATCH', message: 'the restored data differs from the manifest', retryable: false },
    };
    // The same event twice, as two stored messages (a verifier retried after publishing).
    await publisher.publish(subjects.verifyFailed('pg', 'main'), VerifyFailed, event, 'verify-failed:attempt-1');
    await publisher.publish(subjects.verifyFailed('pg', 'main'), VerifyFailed, event, 'verify-failed:attempt-2');

    await eventually(() => received.length >= 1 && posts.length >= 1, 15_000);
    // Both events handled and acknowledged, and a little more time for a stray second alert.
    await eventually(async () => {
      const info = await jsm.consumers.info(EVENTS_STREAM.name, consumers.alerterVerifyFailed);
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq >= 2;
    }, 15_000);
    await sleep(500);
    sub.unsubscribe();

    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ severity: 'critical', kind: 'verify_failed', artifactId: 'pg-main-a1', dedupeKey: 'verify_failed:pg:main:pg-main-a1' });
    expect(posts).toHaveLength(1);
    expect(posts[0]?.path).toBe('/hooks/T000/B000/secret');
    expect(posts[0]?.body.text).toContain('verify failed pg/main');
    expect(posts[0]?.body.blocks.length).toBeGreaterThan(0);

    const stored = await jsm.streams.info(EVENTS_STREAM.name, { subjects_filter: filters.alerts });
    expect(stored.state.subjects).toEqual({ 'alert.critical.verify_failed': 1 });
  });

  it('after a restart, knows the last verified backup from the stream and reports a missed window', async () => {
    await alerter?.stop();
    alerter = undefined;
    const js = nc.jetstream();
    const publisher = createEventPublisher(js);
    const lastVerified = new Date(Date.now() - 3 * 3600_000);
    await publisher.publish(subjects.verifyPassed('pg', 'nightly'), VerifyPassed, {
      schemaVersion: 1, engine: 'pg', target: 'nightly', requestId: 'req-n', occurredAt: lastVerified.toISOString(),
      artifactId: 'pg-nightly-a1', durationMs: 10, checks: [],
    });
    const config = parseConfig(`
targets:
  - { name: nightly, engine: pg, postgres: {}, expectedWithinMinutes: 120 }
`, 'test.yaml', {});
    alerter = await startAlerter(config, { js, jsm, logger, publisher });
    expect(alerter.watchdog.lastSuccessOf('pg', 'nightly')).toEqual(lastVerified);

    const received: Alert[] = [];
    const sub = nc.subscribe(subjects.alert('critical', 'backup_missed'), { callback: (_err, msg) => received.push(Alert.parse(decode(msg.data, msg.headers))) });
    await alerter.checkWatchdog();
    await alerter.checkWatchdog();
    await eventually(() => received.length >= 1, 15_000);
    await sleep(200);
    sub.unsubscribe();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ kind: 'backup_missed', target: 'nightly', dedupeKey: `backup_missed:pg:nightly:${lastVerified.toISOString()}` });
  });
});
