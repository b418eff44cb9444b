// What a person sees on NATS, against a real nats-server: the real alerter, the real pg-agent
// handlers behind the real consumer runner, and a source PostgreSQL address nothing listens on
// (so the failure is the real driver's ECONNREFUSED), read by plain nats.js subscriptions and by
// the tidemark CLI as a child process.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers as natsHeaders, type JetStreamClient, type Msg, type NatsConnection } from 'nats';
import {
  COMMANDS_STREAM, CONTENT_TYPE_HEADER, JSON_TYPE, RequestBackup, STREAMS, consumers, encodeJson, filters, subjects,
} from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import {
  consumerPolicyOf, createEventPublisher, createLogger, ensureConsumer, ensureStreams, runConsumer, DEFAULT_CONSUMER_SETTINGS, type RunningConsumer,
} from '@tidemark/runtime';
import { pgCluster } from '@tidemark/pg';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { freePort, runNodeScript, startNats, type NatsTestServer } from '@tidemark/testkit';
import { startAlerter, type RunningAlerter } from '@tidemark/alerter-service';
import { handleBackupRequested, type BackupDeps } from '@tidemark/pg-agent-service';

const CLI = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));
const logger = createLogger('readable-events-test', { TIDEMARK_LOG_LEVEL: 'silent' });
const MAX_DELIVER = 2;

const runCli = (args: string[]) => runNodeScript(CLI, args);

/** A plain subscriber, as `nats sub` would be: raw bytes and headers, nothing of Tidemark's codec. */
function rawSubscriber(nc: NatsConnection, subject: string): { readonly messages: Msg[]; next(matching: (m: Msg) => boolean, timeoutMs?: number): Promise<Msg> } {
  const messages: Msg[] = [];
  nc.subscribe(subject, { callback: (_e, m) => messages.push(m) });
  return {
    messages,
    async next(matching, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(matching);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`nothing matching on ${subject} in time; got ${messages.map((m) => m.subject).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

const jsonOf = (m: Msg): Record<string, unknown> => JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>;

describe('events people can read (real NATS)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let alerter: RunningAlerter;
  let agent: RunningConsumer;
  let alerts: ReturnType<typeof rawSubscriber>;
  let failures: ReturnType<typeof rawSubscriber>;

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
    alerts = rawSubscriber(nc, 'alert.>');
    failures = rawSubscriber(nc, filters.backupFailed);

    const closedPort = await freePort();
    const config = parseConfig(`
events: { encoding: json }
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: false, verify: true }
targets:
  - name: demo
    engine: pg
    postgres: { host: 127.0.0.1, port: ${closedPort}, user: postgres, database: demo }
`);
    // The alerter publishes with the default (msgpack) publisher: alerts are JSON regardless.
    alerter = await startAlerter(config, { js, jsm, logger, publisher: createEventPublisher(js), maxDeliver: 5 });
    // The agent publishes its events the way `events: { encoding: json }` makes every service do.
    const publisher = createEventPublisher(js, { encoding: config.events.encoding });
    const deps: BackupDeps = {
      config,
      store: new ArtifactStore(createMemoryBackend()),
      clusterFor: (target) => pgCluster(target.postgres!, 'source'),
      publisher,
      keys: loadKeyRing({}),
      agent: { id: 'pg-agent-test', version: '0.0.0' },
      clock: () => new Date(),
    };
    await ensureConsumer(jsm, COMMANDS_STREAM.name, consumers.agentBackups('pg'), filters.backupCommandsFor('pg'), { ackWaitMs: 30_000, maxDeliver: MAX_DELIVER });
    agent = runConsumer({
      js, stream: COMMANDS_STREAM.name, durable: consumers.agentBackups('pg'), schema: RequestBackup, logger, kind: 'command', publisher,
      // The retry comes 2 s after the failure: this suite is about what the events say, not about
      // the default backoff (10 s), which would eat most of its wait for the last attempt.
      policy: consumerPolicyOf({ ...DEFAULT_CONSUMER_SETTINGS, maxDeliver: MAX_DELIVER, backoff: { initialSeconds: 2, maxSeconds: 2 } }),
      handler: (message, ctx) => handleBackupRequested(message, deps, ctx),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await alerter?.stop();
    await nc?.close();
    await server?.stop();
  });

  it('a typo\'d target is a rejected command: `--wait` ends at once with the reason, the alert is a JSON warning, and nothing pages', async () => {
    const watching = runCli(['--nats', server.url, '--json', '--timeout', '30', 'watch', 'alert.>', '--count', '1']);
    await new Promise((r) => setTimeout(r, 500)); // the watcher subscribes before the command goes out

    const result = await runCli(['--nats', server.url, '--timeout', '30', 'backup', 'pg', 'nosuch', '--wait']);
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(10_000);
    expect(result.stdout).toContain('rejected: TARGET_UNKNOWN: no pg target named "nosuch" is configured (the configured pg targets are demo)');

    const alert = await alerts.next((m) => m.subject === 'alert.warning.command_rejected');
    expect(alert.headers?.get(CONTENT_TYPE_HEADER)).toBe(JSON_TYPE);
    expect(jsonOf(alert)).toMatchObject({ severity: 'warning', kind: 'command_rejected', error: { code: 'TARGET_UNKNOWN' } });
    expect(alerts.messages.filter((m) => m.subject.startsWith('alert.critical.'))).toEqual([]);
    expect(failures.messages).toEqual([]);

    const watched = await watching;
    expect(watched.code).toBe(0);
    const line = JSON.parse(watched.stdout.trim()) as { subject: string; event: { kind: string; summary: string } };
    expect(line.subject).toBe('alert.warning.command_rejected');
    expect(line.event.summary).toContain('no pg target named "nosuch"');
  });

  it('a source that stays down: the retried failure says so, the last one says it gave up, and the critical alert is readable JSON', async () => {
    const h = natsHeaders();
    h.set(CONTENT_TYPE_HEADER, JSON_TYPE);
    await js.publish(subjects.backupRequested('pg', 'demo'), encodeJson({ requestId: 'outage-1' }), { headers: h, msgID: 'outage-1' });

    const isOurs = (attempt: number) => (m: Msg) => m.subject === 'backup.failed.pg.demo' && jsonOf(m)['requestId'] === 'outage-1' && jsonOf(m)['attempt'] === attempt;
    const first = await failures.next(isOurs(1));
    // events.encoding: json reaches the agent's publisher: a plain subscriber reads the event.
    expect(first.headers?.get(CONTENT_TYPE_HEADER)).toBe(JSON_TYPE);
    expect(jsonOf(first)).toMatchObject({ final: false, error: { code: 'SOURCE_UNAVAILABLE' } });
    expect((jsonOf(first)['error'] as { message: string }).message).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+\); attempt 1 of 2, it will be retried$/);

    const last = await failures.next(isOurs(2), 30_000);
    const lastMessage = (jsonOf(last)['error'] as { message: string }).message;
    expect(jsonOf(last)['final']).toBe(true);
    expect(lastMessage).toMatch(/^gave up after 2 attempts: .*ECONNREFUSED 127\.0\.0\.1:\d+\)\. Fix the cause and request the backup again \(`tidemark backup pg demo`\)\.$/);
    expect(lastMessage).not.toMatch(/will be retried/);

    // The alerter decoded the JSON event like a msgpack one, and its alert is JSON too.
    const alert = await alerts.next((m) => m.subject === 'alert.critical.backup_failed');
    expect(alert.headers?.get(CONTENT_TYPE_HEADER)).toBe(JSON_TYPE);
    const body = jsonOf(alert);
    expect(body).toMatchObject({ severity: 'critical', kind: 'backup_failed', requestId: 'outage-1' });
    expect(body['summary']).toBe(`Backup of pg/demo failed (SOURCE_UNAVAILABLE): ${lastMessage}`);
  });
});
