// Real NATS and a real HTTP webhook: a wal.problem event on the TIDEMARK_WAL stream becomes one
// alert on alert.critical.wal_gap and one webhook call, even when the storage service reports
// the same gap again an hour later.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { Alert, EVENTS_STREAM, STREAMS, WAL_STREAM, WalProblem, consumers, decode, filters, subjects } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { createEventPublisher, createLogger, ensureStreams } from '@tidemark/runtime';
import { startNats, type NatsTestServer } from '@tidemark/testkit';
import { startAlerter, type RunningAlerter } from '../src/index.js';

const logger = createLogger('alerter-wal-test', { TIDEMARK_LOG_LEVEL: 'warn' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('alerter: wal.problem (real NATS)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let webhook: Server;
  let alerter: RunningAlerter | undefined;
  const posts: Array<{ text: string }> = [];

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
    webhook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
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

  it('alerts on a gap once, with the webhook told what is missing and what to do', async () => {
    const { port } = webhook.address() as AddressInfo;
    const config = parseConfig(`
alerts:
  webhooks: [{ url: "http://127.0.0.1:${port}/hooks/wal", minSeverity: critical }]
  dedupeWindowMinutes: 60
`, 'test.yaml', {});
    const js = nc.jetstream();
    const publisher = createEventPublisher(js);
    alerter = await startAlerter(config, { js, jsm, logger, publisher });

    const received: Alert[] = [];
    const sub = nc.subscribe(filters.alerts, { callback: (_err, msg) => received.push(Alert.parse(decode(msg.data, msg.headers))) });
    const gap: WalProblem = {
      schemaVersion: 1, engine: 'pg', target: 'main', occurredAt: new Date().toISOString(), problem: 'gap', systemIdentifier: '7300000000000000001',
      summary: '1 WAL segment missing from the archive of pg/main (cluster 7300000000000000001) between 000000010000000000000002 and 000000010000000000000009, the first 000000010000000000000005: recovery cannot replay across the gap',
      missing: ['000000010000000000000005'], missingCount: 1,
    };
    // The storage service reports it, and reports it again the next hour (a new msgId).
    await publisher.publish(subjects.walProblem('pg', 'main'), WalProblem, gap, 'wal-problem:hour-1');
    await publisher.publish(subjects.walProblem('pg', 'main'), WalProblem, { ...gap, occurredAt: new Date(Date.now() + 3600_000).toISOString() }, 'wal-problem:hour-2');

    await expect.poll(() => received.length >= 1 && posts.length >= 1, { timeout: 15_000 }).toBe(true);
    await expect.poll(async () => {
      const info = await jsm.consumers.info(WAL_STREAM.name, consumers.alerterWalProblem);
      return info.num_pending === 0 && info.num_ack_pending === 0 && info.delivered.stream_seq >= 2;
    }, { timeout: 15_000 }).toBe(true);
    await sleep(500);
    sub.unsubscribe();

    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      severity: 'critical', kind: 'wal_gap', target: 'main', dedupeKey: 'wal_gap:pg:main:7300000000000000001:000000010000000000000005',
    });
    expect(posts).toHaveLength(1);
    expect(posts[0]?.text).toContain('[CRITICAL] wal gap pg/main');
    expect(posts[0]?.text).toContain('000000010000000000000005');
    expect(posts[0]?.text).toContain('Take a new base backup now');
    const stored = await jsm.streams.info(EVENTS_STREAM.name, { subjects_filter: filters.alerts });
    expect(stored.state.subjects).toEqual({ [subjects.alert('critical', 'wal_gap')]: 1 });
  });
});
