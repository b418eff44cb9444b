// The backup and restore handlers against a real PostgreSQL with pgvector, through the real
// pipeline (gzip + encryption) into filesystem storage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore, type Manifest, type PgSourceFacts } from '@tidemark/contracts';
import { parseConfig, type Target } from '@tidemark/config';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { makeTempDir, removeTempDir, startPostgres, type PostgresServer } from '@tidemark/testkit';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import type { BackupDeps } from '../src/backup/take-backup.js';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { pgCluster } from '@tidemark/pg';
import { recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { createFixtureDatabase, FIXTURE_ROWS, pgConfigYaml } from './fixture.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

describe('pg-agent against PostgreSQL', () => {
  let server: PostgresServer;
  let dir: string;
  let store: ArtifactStore;
  let deps: BackupDeps;
  let publisher: ReturnType<typeof recordingPublisher>;
  let manifest: Manifest;
  const env = { ...process.env, TM_TEST_PGPASSWORD: '' };

  beforeAll(async () => {
    server = await startPostgres({ pgvector: true });
    env.TM_TEST_PGPASSWORD = server.password;
    await createFixtureDatabase(server, 'app');
    dir = await makeTempDir('tidemark-pg-agent-');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: dir }));
    publisher = recordingPublisher();
    deps = {
      config: parseConfig(pgConfigYaml(server, 'app', 'TM_TEST_PGPASSWORD')),
      store,
      clusterFor: (target: Target) => pgCluster(target.postgres!, 'source', env),
      publisher,
      keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
      agent: { id: 'it-agent', version: '0.0.0' },
      clock: () => new Date(),
    };
  });

  afterAll(async () => {
    await store?.backend.close();
    await server?.stop();
    if (dir) await removeTempDir(dir);
  });

  it('backs up a consistent dump with facts taken in its snapshot', async () => {
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'it-1' }), deps, testContext());
    expect(outcome).toEqual({ type: 'ack' });
    const [found] = await store.listManifests({ engine: 'pg', target: 'main' });
    manifest = found!;
    const facts = manifest.source as unknown as PgSourceFacts;
    expect(manifest.pipeline).toMatchObject({ compression: 'gzip', encryption: { keyId: deps.keys.current!.id } });
    expect(facts.serverVersionNum).toBeGreaterThanOrEqual(150000);
    expect(facts.snapshot).toMatch(/^[0-9A-F-]+$/);
    expect(facts.extensions.map((e) => e.name)).toContain('vector');
    expect(Object.fromEntries(facts.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]))).toEqual(FIXTURE_ROWS);
    expect(facts.tables.every((t) => t.checksum !== undefined)).toBe(true);
    expect(facts.vectorProbes).toHaveLength(1);
    expect(facts.vectorProbes[0]).toMatchObject({ schema: 'public', table: 'items', column: 'embedding', keyColumn: 'id', queryKey: '1', k: 5 });
    expect(facts.vectorProbes[0]?.topKeys[0]).toBe('1');
    expect(facts.vectorProbes[0]?.topKeys).toHaveLength(5);
    expect(publisher.subjects()).toEqual(['backup.started.pg.main', 'artifact.stored.pg.main', 'backup.completed.pg.main']);
  });

  it('restores into a new database with the same rows and checksums', async () => {
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app_copy' }), deps, testContext({ subject: 'restore.requested.pg.main' }));
    expect(outcome).toEqual({ type: 'ack' });
    const restored = await pgCluster(deps.config.targets[0]!.postgres!, 'source', env).collectFacts('app_copy', { tableChecksums: true });
    const expected = manifest.source as unknown as PgSourceFacts;
    expect(restored.tables).toEqual(expected.tables);
    expect(restored.vectorProbes).toEqual(expected.vectorProbes);
  });

  it('refuses to restore over an existing database without overwrite', async () => {
    publisher.published.length = 0;
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app' }), deps, testContext({ subject: 'restore.requested.pg.main', streamSequence: 2 }));
    expect(outcome.type).toBe('term');
    expect(publisher.published[0]?.event).toMatchObject({ error: { code: 'RESTORE_TARGET_EXISTS' } });
  });

  it('with overwrite, swaps the restored copy in and keeps the old database', async () => {
    await server.query("INSERT INTO items (id, name) VALUES (5000, 'after the backup')", [], 'app');
    publisher.published.length = 0;
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app', overwrite: true }), deps, testContext({ subject: 'restore.requested.pg.main', streamSequence: 3 }));
    expect(outcome).toEqual({ type: 'ack' });
    const completed = publisher.published.at(-1)!;
    expect(completed.subject).toBe('restore.completed.pg.main');
    const keptAs = completed.event['previousDatabaseKeptAs'] as string;
    expect(keptAs).toMatch(/^app_pre_restore_\d{14}$/);
    expect((await server.query('SELECT count(*)::int AS n FROM items', [], 'app'))[0].n).toBe(1000);
    expect((await server.query('SELECT count(*)::int AS n FROM items', [], keptAs))[0].n).toBe(1001);

    // Redelivered (its restore.completed lost): announced again from the database's mark, not restored over itself.
    publisher.published.length = 0;
    const again = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app', overwrite: true }), deps, testContext({ subject: 'restore.requested.pg.main', streamSequence: 3, attempt: 2 }));
    expect(again).toEqual({ type: 'ack' });
    expect(publisher.subjects()).toEqual(['restore.completed.pg.main']);
    expect(publisher.published[0]?.event).toMatchObject({ database: 'app', previousDatabaseKeptAs: keptAs });
    const kept = await server.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, 'app_pre_restore_')");
    expect(kept.map((d) => d.datname)).toEqual([keptAs]);
  });

  it('backs up again after a restore (the swapped-in database accepts connections)', async () => {
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'it-2' }), deps, testContext({ streamSequence: 99 }));
    expect(outcome).toEqual({ type: 'ack' });
  });

  it('reports a pg_dump that cannot run as DUMP_FAILED, to be retried', async () => {
    const brokenTools = { ...deps, clusterFor: (target: Target) => pgCluster(target.postgres!, 'source', { ...env, TIDEMARK_PG_BIN: '/nonexistent' }) };
    publisher.published.length = 0;
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'it-4' }), brokenTools, testContext({ streamSequence: 101 }));
    expect(outcome.type).toBe('nak');
    expect(publisher.published.at(-1)?.event).toMatchObject({ final: false, error: { code: 'DUMP_FAILED', retryable: true } });
    expect((publisher.published.at(-1)?.event['error'] as { message: string }).message).toContain('could not start pg_dump');
    expect((await server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'app' AND state LIKE 'idle in transaction%'"))[0].n).toBe(0);
  });

  it('fails a backup of a missing database without retrying', async () => {
    const missing = { ...deps, config: parseConfig(pgConfigYaml(server, 'nope', 'TM_TEST_PGPASSWORD')) };
    publisher.published.length = 0;
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'it-3' }), missing, testContext({ streamSequence: 100 }));
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)?.event).toMatchObject({ final: true, error: { code: 'CONFIG_INVALID' } });
  });
});
