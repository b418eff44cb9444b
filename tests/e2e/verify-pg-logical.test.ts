// Here, not in services/verifier/test, because it drives two services (services never import services).
// The verifier against a real PostgreSQL sandbox: an artifact made by the pg-agent's backup
// handler through the real pipeline (gzip + encryption) passes; one with a flipped byte fails
// with an integrity code; the scratch databases are always gone afterwards.
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestBackup, type Manifest } from '@tidemark/contracts';
import { parseConfig, type Target } from '@tidemark/config';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '@tidemark/pg-agent-service';
import { pgCluster } from '@tidemark/pg';
import { makeTempDir, recordingPublisher, removeTempDir, startPostgres, storedEvent, testContextFor, type PostgresServer } from '@tidemark/testkit';
import { handleArtifactStored as handleArtifactStoredUnsettled, type VerifierDeps } from '@tidemark/verifier-service';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleArtifactStored = settling(handleArtifactStoredUnsettled);

const ctx = testContextFor('backup.requested.pg.main');

describe('verifier against PostgreSQL', () => {
  let server: PostgresServer;
  let dir: string;
  let store: ArtifactStore;
  let deps: VerifierDeps;
  let published: ReturnType<typeof recordingPublisher>['published'];
  let manifest: Manifest;
  const env = { ...process.env, TM_TEST_PGPASSWORD: '' };
  const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '33'.repeat(32) });

  const scratchDatabases = async () => (await server.query("SELECT datname FROM pg_database WHERE datname LIKE 'tidemark_verify_%'")).length;

  beforeAll(async () => {
    server = await startPostgres({ pgvector: true });
    env.TM_TEST_PGPASSWORD = server.password;
    await server.createDatabase('app');
    for (const sql of [
      'CREATE EXTENSION vector',
      'CREATE TABLE items (id int PRIMARY KEY, name text, embedding vector(3), created timestamptz)',
      `INSERT INTO items SELECT g, 'item ' || g, ARRAY[sin(g), cos(g), (g % 7) / 7.0]::vector, '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 hour' FROM generate_series(1, 1000) g`,
      'CREATE INDEX ON items USING ivfflat (embedding vector_l2_ops) WITH (lists = 10)',
      'CREATE TABLE notes (id serial PRIMARY KEY, body text)',
      `INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 300) g`,
    ]) await server.query(sql, [], 'app');
    dir = await makeTempDir('tidemark-verifier-');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: dir }));
    const connection = `{ host: ${server.host}, port: ${server.port}, user: ${server.user}, database: app, passwordEnv: TM_TEST_PGPASSWORD }`;
    const config = parseConfig(`
storage: { type: fs, root: ${dir} }
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - { name: main, engine: pg, postgres: ${connection} }
`);
    const backup = recordingPublisher();
    const outcome = await handleBackupRequested(RequestBackup.parse({ requestId: 'v-1' }), {
      config, store, publisher: backup, keys, clock: () => new Date(), agent: { id: 'it', version: '0' },
      clusterFor: (target: Target) => pgCluster(target.postgres!, 'source', env),
    }, ctx());
    expect(outcome).toEqual({ type: 'ack' });
    [manifest] = (await store.listManifests({ engine: 'pg', target: 'main' })) as [Manifest];
    const sandboxConnection = { ...config.targets[0]!.postgres!, database: 'postgres' };
    const recorder = recordingPublisher();
    published = recorder.published;
    deps = { store, sandbox: pgCluster(sandboxConnection, 'sandbox', env), publisher: recorder, keys, clock: () => new Date() };
  });

  afterAll(async () => {
    await store?.backend.close();
    await server?.stop();
    if (dir) await removeTempDir(dir);
  });

  it('passes an intact artifact and drops its scratch database', async () => {
    const outcome = await handleArtifactStored(storedEvent(manifest), deps, ctx({ subject: 'artifact.stored.pg.main' }));
    expect(outcome).toEqual({ type: 'ack' });
    expect(published.at(-1)?.subject).toBe('verify.passed.pg.main');
    const checks = published.at(-1)?.event['checks'] as { name: string; ok: boolean }[];
    expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(['rows:public.items', 'checksum:public.items', 'probe:public.items.embedding', 'extension:vector']));
    expect(checks.every((c) => c.ok)).toBe(true);
    expect((await store.readVerification(manifest))?.status).toBe('passed');
    expect(await scratchDatabases()).toBe(0);
  });

  it('fails a modified artifact with an integrity code and drops its scratch database', async () => {
    const stored = await buffer(await store.backend.open(manifest.data.key));
    stored[Math.floor(stored.length / 2)]! ^= 0x01;
    await store.backend.save(manifest.data.key, stored);
    const outcome = await handleArtifactStored(storedEvent(manifest), deps, ctx({ subject: 'artifact.stored.pg.main' }));
    expect(outcome).toMatchObject({ type: 'term' });
    const failed = published.at(-1)!;
    expect(failed.subject).toBe('verify.failed.pg.main');
    expect((failed.event['error'] as { code: string }).code).toMatch(/^INTEGRITY_/);
    expect((await store.readVerification(manifest))?.status).toBe('failed');
    expect(await scratchDatabases()).toBe(0);
  });
});
