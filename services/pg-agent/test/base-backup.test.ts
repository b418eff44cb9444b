// backup.requested.pg.<target> with kind "base" against a real PostgreSQL 15 (pgvector), through the
// real pipeline (zstd or its gzip fallback, encryption) into filesystem storage: the committed
// artifact is the plain tar with PostgreSQL's backup_manifest, its facts describe the source, a
// redelivery only re-announces, and failures are reported the way operators can act on.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgBaseSourceFacts, RequestBackup, TidemarkError, type Manifest } from '@tidemark/contracts';
import { parseConfig, type Target } from '@tidemark/config';
import { ArtifactStore, createBackend, newArtifactId } from '@tidemark/storage';
import { decodeStream, loadKeyRing } from '@tidemark/pipeline';
import { TarReader, parseLsn, pgCluster, startPgBaseBackup } from '@tidemark/pg';
import { makeTempDir, removeTempDir, startPostgres, type PostgresServer } from '@tidemark/testkit';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import type { BackupDeps } from '../src/backup/take-backup.js';
import { recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { createFixtureDatabase, FIXTURE_ROWS } from './fixture.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);

const PASSWORD_ENV = 'TM_TEST_BASE_PASSWORD';

describe('base backups in the pg-agent', () => {
  let server: PostgresServer;
  let dir: string;
  let store: ArtifactStore;
  let publisher: ReturnType<typeof recordingPublisher>;
  const env: NodeJS.ProcessEnv = { ...process.env };

  const configYaml = (targets: string) => `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true, compression: zstd }
targets:
${targets}`;
  const target = (name: string, user: string, extra = '') =>
    `  - { name: ${name}, engine: pg, postgres: { host: ${server.host}, port: ${server.port}, user: ${user}, database: app, passwordEnv: ${PASSWORD_ENV} }${extra} }\n`;

  const depsFor = (yaml: string): BackupDeps => ({
    config: parseConfig(yaml),
    store,
    clusterFor: (t: Target) => pgCluster(t.postgres!, 'source', env),
    baseBackups: (t, options) => startPgBaseBackup(t.postgres!, { ...options, env }),
    publisher,
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'base-agent', version: '0.0.0' },
    clock: () => new Date(),
    progressIntervalMs: 50,
  });

  beforeAll(async () => {
    server = await startPostgres({ pgvector: true, settings: { wal_level: 'replica', max_wal_senders: '4' } });
    env[PASSWORD_ENV] = server.password;
    await createFixtureDatabase(server, 'app');
    // Sessions report their write counters within ~10 s of going idle; the fixture's inserts must
    // be reported before the backup starts, or they count as writes during it.
    for (let i = 0; ; i += 1) {
      const rows = await server.query<{ name: string; n: number }>("SELECT schemaname || '.' || relname AS name, n_tup_ins::int AS n FROM pg_stat_user_tables", [], 'app');
      const inserted = Object.fromEntries(rows.map((r) => [r.name, r.n]));
      if (Object.entries(FIXTURE_ROWS).every(([table, n]) => inserted[table] === n)) break;
      if (i > 150) throw new Error(`the fixture's statistics were not reported in time: ${JSON.stringify(inserted)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    dir = await makeTempDir('tidemark-base-agent-');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: dir }));
    publisher = recordingPublisher();
  });

  afterAll(async () => {
    await store?.backend.close();
    await server?.stop();
    if (dir) await removeTempDir(dir);
  });

  let manifest: Manifest;

  it('stores a committed base backup whose facts describe the source', async () => {
    const deps = depsFor(configYaml(target('main', server.user, ', baseBackup: { maxRateKbps: 1048576, nice: 5, checkpoint: fast, tableChecksums: true }')));
    const ctx = testContext();
    const before = new Date();
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'base-1', kind: 'base' }), deps, ctx);
    expect(outcome).toEqual({ type: 'ack' });
    expect(publisher.subjects()).toEqual(['backup.started.pg.main', 'artifact.stored.pg.main', 'backup.completed.pg.main']);
    expect(ctx.progressCalls).toBeGreaterThan(0);

    const found = await store.readManifest('pg', 'main', newArtifactId('base-1', ctx.storedAt));
    manifest = found!;
    expect(manifest).toMatchObject({ kind: 'base', format: 'pg_basebackup-tar', verify: true, pipeline: { encryption: { keyId: deps.keys.current!.id } } });
    const facts = PgBaseSourceFacts.parse(manifest.source);
    const [source] = await server.query<{ sysid: string; version: string; lsn: string; timeline: number }>(
      `SELECT system_identifier::text AS sysid, current_setting('server_version') AS version, pg_current_wal_lsn()::text AS lsn,
              (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline FROM pg_control_system()`,
    );
    expect(facts.systemIdentifier).toBe(source?.sysid);
    expect(facts.serverVersion).toBe(source?.version);
    expect(facts.startTimeline).toBe(source?.timeline);
    expect(facts.stopTimeline).toBe(source?.timeline);
    expect(facts.label).toBe(`tidemark ${manifest.id}`);
    expect(parseLsn(facts.checkpointLsn)).toBeGreaterThanOrEqual(parseLsn(facts.startLsn));
    expect(parseLsn(facts.stopLsn)).toBeGreaterThan(parseLsn(facts.startLsn));
    expect(parseLsn(facts.stopLsn)).toBeLessThanOrEqual(parseLsn(source!.lsn));
    // backup_label's START TIME has whole seconds.
    expect(Date.parse(facts.startedAt)).toBeGreaterThanOrEqual(Math.floor(before.getTime() / 1000) * 1000);
    expect(Date.parse(facts.stoppedAt)).toBeGreaterThanOrEqual(Date.parse(facts.startedAt));
    expect(Date.parse(facts.stoppedAt)).toBeLessThanOrEqual(Date.now());
    expect(facts.pgvectorVersion).toMatch(/^\d+\.\d+/);
    expect(facts.maxRateKbps).toBe(1048576);
    expect(facts.serverCompression).toBeUndefined();
    expect(facts.changedTables).toEqual([]);
    expect(Object.fromEntries(facts.database!.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]))).toEqual(FIXTURE_ROWS);
    expect(facts.database!.tables.every((t) => t.checksum !== undefined)).toBe(true);
    expect(facts.database!.vectorProbes).toHaveLength(1);

    // The stored bytes decode to the tar pg_basebackup wrote, with its backup_manifest last.
    const decoded = decodeStream(await store.openData(manifest), { pipeline: manifest.pipeline, sha256: manifest.data.sha256, storedBytes: manifest.data.storedBytes }, deps.keys);
    const names: string[] = [];
    const manifestHash = createHash('sha256');
    let manifestBytes = 0;
    let total = 0;
    const reader = new TarReader({
      entry: (e) => void names.push(e.name),
      data: (e, chunk) => {
        if (e.name !== 'backup_manifest') return;
        manifestHash.update(chunk);
        manifestBytes += chunk.length;
      },
    });
    for await (const chunk of decoded) {
      total += (chunk as Buffer).length;
      await reader.push(chunk as Buffer);
    }
    reader.finish();
    expect(total).toBe(manifest.data.rawBytes);
    expect(names).toEqual(expect.arrayContaining(['backup_label', 'PG_VERSION', 'global/pg_control', 'backup_manifest']));
    expect(names.at(-1)).toBe('backup_manifest');
    expect(names.some((n) => /^pg_wal\/[0-9A-F]{24}$/.test(n))).toBe(true);
    expect(facts.backupManifest).toEqual({ bytes: manifestBytes, sha256: manifestHash.digest('hex') });
  });

  it('re-announces a committed base backup on redelivery without taking another', async () => {
    const deps = depsFor(configYaml(target('main', server.user)));
    publisher.published.length = 0;
    const [before] = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'walsender'");
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'base-1', kind: 'base' }), deps, testContext({ attempt: 2 }));
    expect(outcome).toEqual({ type: 'ack' });
    expect(before?.n).toBe(0);
    expect(publisher.subjects()).toEqual(['artifact.stored.pg.main', 'backup.completed.pg.main']);
    expect(publisher.published[0]?.msgId).toBe(`stored:${manifest.id}`);
    expect((await store.listManifests({ engine: 'pg', target: 'main' })).map((m) => m.id)).toEqual([manifest.id]);
  });

  it('fails finally, naming the REPLICATION attribute, when the user may not take base backups', async () => {
    await server.query(`CREATE ROLE norepl LOGIN PASSWORD '${server.password}'`);
    await server.query('GRANT pg_read_all_data TO norepl');
    const deps = depsFor(configYaml(target('main', 'norepl')));
    publisher.published.length = 0;
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'base-norepl', kind: 'base' }), deps, testContext());
    expect(outcome.type).toBe('term');
    const failed = publisher.published.at(-1)!;
    expect(failed.subject).toBe('backup.failed.pg.main');
    expect(failed.event).toMatchObject({ final: true, error: { code: 'SOURCE_AUTH_FAILED', retryable: false } });
    const message = (failed.event['error'] as { message: string }).message;
    expect(message).toContain('must be superuser or replication role');
    expect(message).toContain('REPLICATION');
    expect(await store.readManifest('pg', 'main', newArtifactId('base-norepl', testContext().storedAt))).toBeUndefined();
    // The snapshot session of the facts is closed again.
    const open = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'norepl'");
    expect(open[0]?.n).toBe(0);
  });

  it('refuses server-side compression before starting, with the reason', async () => {
    const deps = depsFor(configYaml(target('main', server.user, ', baseBackup: { serverCompression: zstd, serverCompressionWorkers: 2 }')));
    publisher.published.length = 0;
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'base-zstd', kind: 'base' }), deps, testContext());
    expect(outcome.type).toBe('term');
    expect(publisher.subjects()).toEqual(['backup.failed.pg.main']);
    expect(publisher.published[0]?.event).toMatchObject({ final: true, error: { code: 'CONFIG_INVALID' } });
    expect((publisher.published[0]?.event['error'] as { message: string }).message).toContain('cannot inject manifest into a compressed tar file');
  });

  it('hands a throttled base backup back on shutdown and leaves no session behind', async () => {
    const deps = depsFor(configYaml(target('main', server.user, ', baseBackup: { maxRateKbps: 32 }')));
    const controller = new AbortController();
    const ctx = testContext({ signal: controller.signal, progress: () => controller.abort(new TidemarkError('SHUTTING_DOWN', 'the service is shutting down')) });
    publisher.published.length = 0;
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'base-abort', kind: 'base' }), deps, ctx);
    expect(outcome).toEqual({ type: 'nak', delayMs: 0 });
    expect(publisher.subjects()).toEqual(['backup.started.pg.main']);
    expect(await store.readManifest('pg', 'main', newArtifactId('base-abort', ctx.storedAt))).toBeUndefined();
    for (let i = 0; i < 50; i += 1) {
      const [row] = await server.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'walsender' OR (datname = 'app' AND application_name = 'tidemark')");
      if (row?.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('pg_basebackup or the snapshot session is still connected after the handler returned');
  });
});
