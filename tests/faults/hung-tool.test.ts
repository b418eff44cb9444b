// A hung tool ends in a retry, never in a command kept alive forever: the real consumer runner and
// pg-agent's backup handler, a real nats-server and a real PostgreSQL, and a pg_dump that writes a
// little of the real dump and then hangs (what a stuck server connection or a frozen disk looks
// like from the agent). Liveness comes from progress: no bytes for the stall window → TIMEOUT, the
// tool is killed, nothing becomes visible, and the redelivered command succeeds once the tool works.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type JetStreamClient, type NatsConnection } from 'nats';
import { COMMANDS_STREAM, RequestBackup, STREAMS, consumers, decode, encodeJson, filters, subjects } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { consumerPolicyOf, createEventPublisher, createLogger, ensureConsumer, ensureStreams, runConsumer, type RunningConsumer } from '@tidemark/runtime';
import { pgCluster } from '@tidemark/pg';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { eventually, makeTempDir, removeTempDir, startNats, startPostgres, type NatsTestServer, type PostgresServer } from '@tidemark/testkit';
import { handleBackupRequested, type BackupDeps } from '@tidemark/pg-agent-service';

const REAL_BIN = '/usr/lib/postgresql/15/bin';
const HUNG_NAME = 'tidemark-hung-pg-dump';
const STALL_SECONDS = 2;
const logger = createLogger('hung-tool-test', { TIDEMARK_LOG_LEVEL: 'silent' });

/** A bin directory like REAL_BIN whose pg_dump hangs after 4 KiB of real output while `flag` exists. */
function hangingToolDirectory(dir: string, flag: string): void {
  for (const tool of readdirSync(REAL_BIN)) {
    if (tool !== 'pg_dump') symlinkSync(join(REAL_BIN, tool), join(dir, tool));
  }
  const script = join(dir, 'pg_dump');
  writeFileSync(
    script,
    `#!/bin/bash
if [ -e '${flag}' ]; then
  '${REAL_BIN}/pg_dump' "$@" | head -c 4096
  exec -a ${HUNG_NAME} sleep 3600
fi
exec '${REAL_BIN}/pg_dump' "$@"
`,
  );
  chmodSync(script, 0o755);
}

const hungProcesses = (): string => {
  try {
    return execFileSync('pgrep', ['-af', HUNG_NAME]).toString().trim();
  } catch {
    return ''; // pgrep exits 1 when nothing matches
  }
};

describe('a hung pg_dump (real NATS, real PostgreSQL, the real runner)', () => {
  let nats: NatsTestServer;
  let postgres: PostgresServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let agent: RunningConsumer;
  let store: ArtifactStore;
  let dir: string;
  let flag: string;
  const events: Array<{ subject: string; event: Record<string, unknown> }> = [];
  const previousBin = process.env['TIDEMARK_PG_BIN'];

  beforeAll(async () => {
    dir = await makeTempDir('tidemark-hung-tool-');
    const bin = join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin, join(dir, 'storage')]);
    flag = join(dir, 'hang');
    writeFileSync(flag, '');
    hangingToolDirectory(bin, flag);
    process.env['TIDEMARK_PG_BIN'] = bin;

    [nats, postgres] = await Promise.all([startNats(), startPostgres()]);
    await postgres.createDatabase('app');
    await postgres.query("CREATE TABLE documents AS SELECT g AS id, repeat(md5(g::text), 8) AS body FROM generate_series(1, 20000) g", [], 'app');

    nc = await connect({ servers: nats.url });
    js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
    nc.subscribe('backup.>', { callback: (_e, m) => events.push({ subject: m.subject, event: decode(m.data, m.headers) as Record<string, unknown> }) });

    const config = parseConfig(`
storage: { type: fs, root: ${join(dir, 'storage')} }
defaults: { encrypt: false, verify: false, compression: gzip }
consumers: { maxDeliver: 3, backoff: { initialSeconds: 0.2, maxSeconds: 1 }, stallSeconds: { backup: ${STALL_SECONDS} } }
targets:
  - name: main
    engine: pg
    postgres: { host: ${postgres.host}, port: ${postgres.port}, user: ${postgres.user}, database: app, passwordEnv: TM_HUNG_PGPASSWORD }
`);
    store = new ArtifactStore(await createBackend({ type: 'fs', root: join(dir, 'storage') }));
    const publisher = createEventPublisher(js);
    const deps: BackupDeps = {
      config,
      store,
      clusterFor: (target) => pgCluster(target.postgres!, 'source', { ...process.env, TM_HUNG_PGPASSWORD: postgres.password }),
      publisher,
      keys: loadKeyRing({}),
      agent: { id: 'hung-tool-agent', version: '0.0.0' },
      clock: () => new Date(),
    };
    await ensureConsumer(jsm, COMMANDS_STREAM.name, consumers.agentBackups('pg'), filters.backupCommandsFor('pg'), { ackWaitMs: 30_000, maxDeliver: config.consumers.maxDeliver });
    agent = runConsumer({
      js, stream: COMMANDS_STREAM.name, durable: consumers.agentBackups('pg'), schema: RequestBackup, logger, kind: 'command', publisher,
      policy: consumerPolicyOf(config.consumers),
      handler: (message, ctx) => handleBackupRequested(message, deps, ctx),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await nc?.close();
    await store?.backend.close();
    await Promise.all([nats?.stop(), postgres?.stop()]);
    if (previousBin === undefined) delete process.env['TIDEMARK_PG_BIN'];
    else process.env['TIDEMARK_PG_BIN'] = previousBin;
    if (dir) await removeTempDir(dir);
  });

  it('is stopped with TIMEOUT within its stall window, killed, leaves nothing visible, and the retry succeeds', async () => {
    const started = Date.now();
    await js.publish(subjects.backupRequested('pg', 'main'), encodeJson({ requestId: 'hung-1' }), { msgID: 'hung-1' });

    // The first attempt hangs after its first bytes; the runner aborts it after the stall window.
    const timedOut = await eventually(
      () => events.find((e) => e.subject === 'backup.failed.pg.main' && (e.event['error'] as { code: string }).code === 'TIMEOUT'),
      STALL_SECONDS * 1000 + 15_000,
      'backup.failed with TIMEOUT',
    );
    const stalledAfterMs = Date.now() - started;
    expect(timedOut.event).toMatchObject({ requestId: 'hung-1', attempt: 1, final: false, error: { code: 'TIMEOUT', retryable: true } });
    expect((timedOut.event['error'] as { message: string }).message).toContain('it will be retried');
    expect(stalledAfterMs).toBeGreaterThanOrEqual(STALL_SECONDS * 1000);

    // The hung tool was killed, and nothing of the attempt is visible in the bucket.
    await eventually(() => (hungProcesses() === '' ? true : undefined), 5_000, 'the hung pg_dump to be killed');
    expect(await store.listManifests({ engine: 'pg', target: 'main' })).toEqual([]);

    // The tool works again: the redelivered command completes, with exactly one artifact.
    rmSync(flag);
    const completed = await eventually(() => events.find((e) => e.subject === 'backup.completed.pg.main'), 60_000, 'backup.completed');
    expect(completed.event).toMatchObject({ requestId: 'hung-1' });
    const manifests = await store.listManifests({ engine: 'pg', target: 'main' });
    expect(manifests).toHaveLength(1);
    expect(events.filter((e) => e.subject === 'backup.failed.pg.main' && e.event['final'] === true)).toEqual([]);
    expect(existsSync(flag)).toBe(false);
    console.log(`hung pg_dump: TIMEOUT after ${stalledAfterMs} ms (stall window ${STALL_SECONDS} s), completed after ${Date.now() - started} ms`);
  });
});
