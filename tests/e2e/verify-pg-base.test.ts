// Here, not in services/verifier/test, because it drives two services (services never import services).
// The verifier's proof of pg base backups against a real PostgreSQL 15 with pgvector: base backups
// taken by the pg-agent's handler through the real pipeline (zstd or gzip, encryption) into
// filesystem storage are extracted, checked with pg_verifybackup, started by the verifier itself
// and compared with their facts. A backup taken while a table is written passes (that table is
// only read); a wrong key, a missing key and a flipped byte fail with their integrity codes; the
// scratch data directory is always gone afterwards.
import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgBaseSourceFacts, RequestBackup, type Manifest, type VerificationCheck } from '@tidemark/contracts';
import { parseConfig, type Target } from '@tidemark/config';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { keyRingOf, loadKeyRing } from '@tidemark/pipeline';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '@tidemark/pg-agent-service';
import { pgCluster, startPgBaseBackup } from '@tidemark/pg';
import { makeTempDir, recordingPublisher, removeTempDir, startPostgres, storedEvent, testContextFor, type PostgresServer } from '@tidemark/testkit';
import { handleArtifactStored as handleArtifactStoredUnsettled, type VerifierDeps } from '@tidemark/verifier-service';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleArtifactStored = settling(handleArtifactStoredUnsettled);

const ctx = testContextFor('artifact.stored.pg.main');
const PASSWORD_ENV = 'TM_TEST_BASE_VERIFY_PASSWORD';

describe('verifier: pg base backups', () => {
  let server: PostgresServer;
  let root: string;
  let workDir: string;
  let store: ArtifactStore;
  let deps: VerifierDeps;
  let published: ReturnType<typeof recordingPublisher>['published'];
  let quiet: Manifest;
  let busy: Manifest;
  const env: NodeJS.ProcessEnv = { ...process.env };
  const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '44'.repeat(32) });

  const scratchLeft = async () => readdir(join(workDir, 'verify')).catch(() => []);
  const verify = async (manifest: Manifest, overrides: Partial<VerifierDeps> = {}) => {
    const outcome = await handleArtifactStored(storedEvent(manifest), { ...deps, ...overrides }, ctx());
    // Finished either way: a verdict (passed, differing) acks, a final failure to verify terms.
    expect(['ack', 'term']).toContain(outcome.type);
    return published.at(-1)!;
  };
  const checksOf = (event: Record<string, unknown>) => new Map((event['checks'] as VerificationCheck[]).map((c) => [c.name, c]));

  beforeAll(async () => {
    server = await startPostgres({ pgvector: true, settings: { wal_level: 'replica', max_wal_senders: '4' } });
    env[PASSWORD_ENV] = server.password;
    await server.createDatabase('app');
    for (const sql of [
      'CREATE EXTENSION vector',
      'CREATE TABLE items (id int PRIMARY KEY, name text, embedding vector(3))',
      `INSERT INTO items SELECT g, 'item ' || g, ARRAY[sin(g), cos(g), (g % 7) / 7.0]::vector FROM generate_series(1, 2000) g`,
      'CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)',
      'CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz)',
      `INSERT INTO notes (body, at) SELECT md5(g::text), '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 minute' FROM generate_series(1, 500) g`,
    ]) await server.query(sql, [], 'app');
    // Until the setup's write counters are reported, its inserts would count as writes during the backup.
    for (let i = 0; ; i += 1) {
      const rows = await server.query<{ name: string; n: number }>('SELECT relname AS name, n_tup_ins::int AS n FROM pg_stat_user_tables', [], 'app');
      const inserted = Object.fromEntries(rows.map((r) => [r.name, r.n]));
      if (inserted['items'] === 2000 && inserted['notes'] === 500) break;
      if (i > 150) throw new Error(`the setup's statistics were not reported in time: ${JSON.stringify(inserted)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    root = await makeTempDir('tidemark-base-verify-');
    // The restored server runs as the postgres OS user, which must reach <workDir>/verify.
    await chmod(root, 0o755);
    workDir = join(root, 'pg');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: join(root, 'store') }));
    const config = parseConfig(`
storage: { type: fs, root: ${join(root, 'store')} }
defaults: { encrypt: true, verify: true, compression: zstd }
targets:
  - { name: main, engine: pg, postgres: { host: ${server.host}, port: ${server.port}, user: ${server.user}, database: app, passwordEnv: ${PASSWORD_ENV} }, baseBackup: { tableChecksums: true } }
`);
    const agentDeps = {
      config, store, publisher: recordingPublisher(), keys, clock: () => new Date(), agent: { id: 'it', version: '0' },
      clusterFor: (target: Target) => pgCluster(target.postgres!, 'source', env),
      baseBackups: (target: Target, options: Parameters<typeof startPgBaseBackup>[1]) => startPgBaseBackup(target.postgres!, { ...options, env }),
    };
    const backup = async (requestId: string): Promise<Manifest> => {
      const outcome = await handleBackupRequested(RequestBackup.parse({ requestId, kind: 'base' }), agentDeps, testContextFor('backup.requested.pg.main')());
      expect(outcome).toEqual({ type: 'ack' });
      return (await store.listManifests({ engine: 'pg', target: 'main' })).find((m) => m.requestId === requestId)!;
    };

    quiet = await backup('quiet');
    // A writer that keeps inserting (and so reports its counters every second) across the whole backup.
    let writing = true;
    let next = 100_000;
    const writer = (async () => {
      while (writing) {
        next += 1;
        await server.query("INSERT INTO items VALUES ($1, 'late', ARRAY[1, 2, 3]::vector)", [next], 'app');
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      busy = await backup('busy');
    } finally {
      writing = false;
      await writer;
    }

    const recorder = recordingPublisher();
    published = recorder.published;
    deps = { store, sandbox: undefined, publisher: recorder, keys, clock: () => new Date(), pgBase: { workDir, osUser: 'postgres', env } };
  });

  afterAll(async () => {
    await store?.backend.close();
    await server?.stop();
    if (root) await removeTempDir(root);
  });

  it('passes a base backup of a quiet database with exact counts, checksums and probes', async () => {
    expect(PgBaseSourceFacts.parse(quiet.source).changedTables).toEqual([]);
    const event = await verify(quiet);
    expect(event.subject).toBe('verify.passed.pg.main');
    const checks = checksOf(event.event);
    for (const name of ['extract', 'pg_verifybackup', 'recovery:promoted', 'system-identifier', 'server-version', 'wal:consistent',
      'rows:public.items', 'checksum:public.items', 'rows:public.notes', 'checksum:public.notes', 'probe:public.items.embedding', 'extension:vector']) {
      expect(checks.get(name), name).toMatchObject({ ok: true });
    }
    expect(checks.get('rows:public.items')).toMatchObject({ expected: 2000, actual: 2000 });
    expect(checks.get('system-identifier')?.actual).toBe(PgBaseSourceFacts.parse(quiet.source).systemIdentifier);
    expect((await store.readVerification(quiet))?.status).toBe('passed');
    expect(await scratchLeft()).toEqual([]);
  });

  it('passes a base backup taken while a table was written: that table is only read', async () => {
    const facts = PgBaseSourceFacts.parse(busy.source);
    expect(facts.changedTables).toContain('public.items');
    expect(facts.changedTables).not.toContain('public.notes');
    const event = await verify(busy);
    expect(event.subject).toBe('verify.passed.pg.main');
    const checks = checksOf(event.event);
    expect(checks.get('readable:public.items')).toMatchObject({ ok: true });
    expect(checks.get('readable:public.items')?.actual as number).toBeGreaterThan(2000);
    expect(checks.has('rows:public.items')).toBe(false);
    expect(checks.has('probe:public.items.embedding')).toBe(false);
    expect(checks.get('checksum:public.notes')).toMatchObject({ ok: true });
    expect(await scratchLeft()).toEqual([]);
  });

  it('fails with INTEGRITY_AUTH_FAILED under a wrong key and ENCRYPTION_KEY_MISSING without it', async () => {
    const wrongKey = keyRingOf({ id: keys.current!.id, key: Buffer.alloc(32, 0x55) });
    const wrong = await verify(quiet, { keys: wrongKey });
    expect(wrong.subject).toBe('verify.failed.pg.main');
    expect(wrong.event['error']).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED', retryable: false });
    const missing = await verify(quiet, { keys: keyRingOf(undefined) });
    expect(missing.subject).toBe('verify.failed.pg.main');
    expect(missing.event['error']).toMatchObject({ code: 'ENCRYPTION_KEY_MISSING' });
    expect(await scratchLeft()).toEqual([]);
  });

  it('fails clearly when the server binaries of the backup\'s version are missing', async () => {
    const event = await verify(quiet, { pgBase: { workDir, osUser: 'postgres', env: { ...env, TIDEMARK_PG_BIN: '/nonexistent/bin' } } });
    expect(event.subject).toBe('verify.failed.pg.main');
    expect(event.event['error']).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((event.event['error'] as { message: string }).message).toContain('install the postgresql-15 server package');
  });

  it('fails a stored base backup with a flipped byte with an integrity code', async () => {
    const stored = await buffer(await store.backend.open(quiet.data.key));
    stored[Math.floor(stored.length / 2)]! ^= 0x01;
    await store.backend.save(quiet.data.key, stored);
    const event = await verify(quiet);
    expect(event.subject).toBe('verify.failed.pg.main');
    expect((event.event['error'] as { code: string }).code).toMatch(/^INTEGRITY_/);
    expect((await store.readVerification(quiet))?.status).toBe('failed');
    expect(await scratchLeft()).toEqual([]);
  });
});
