import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { TidemarkError, type ArtifactStored, type Manifest, type PgSourceFacts } from '@tidemark/contracts';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { encodeStream, loadKeyRing } from '@tidemark/pipeline';
import type { PgCluster } from '@tidemark/pg';
import { recordingPublisher, storedEvent, testContextFor } from '@tidemark/testkit';
import { handleArtifactStored as handleArtifactStoredUnsettled, type VerifierDeps } from '../src/handlers/artifact-stored.js';
import { settling } from '@tidemark/testkit';
const handleArtifactStored = settling(handleArtifactStoredUnsettled);

const FACTS: PgSourceFacts = {
  serverVersion: '15.14',
  serverVersionNum: 150014,
  database: 'app',
  databaseSizeBytes: 1,
  extensions: [{ name: 'plpgsql', version: '1.0' }, { name: 'vector', version: '0.8.0' }],
  tables: [
    { schema: 'public', name: 'items', rows: 3, checksum: '3:1' },
    { schema: 'public', name: 'notes', rows: 10, checksum: '10:2' },
  ],
  vectorProbes: [{ schema: 'public', table: 'items', column: 'embedding', keyColumn: 'id', queryKey: '1', k: 5, topKeys: ['1', '3', '2'] }],
};
const DUMP = Buffer.from('PGDMP verify me '.repeat(3000));
const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '22'.repeat(32) });

async function storedArtifact(store: ArtifactStore, verify = true): Promise<Manifest> {
  const encoded = encodeStream(Readable.from([DUMP]), { compression: 'gzip', key: keys.current! });
  const [saved, summary] = await Promise.all([store.saveData('pg', 'main', '20250101T000000Z-0123456789', encoded.output), encoded.summary]);
  const manifest: Manifest = {
    manifestVersion: 1, id: '20250101T000000Z-0123456789', engine: 'pg', target: 'main', kind: 'logical', format: 'pg_dump-custom',
    requestId: 'r1', createdAt: '2025-01-01T00:00:00Z', finishedAt: '2025-01-01T00:00:01Z', agent: { id: 'a', version: '0' },
    source: FACTS as unknown as Record<string, unknown>, pipeline: summary.pipeline,
    data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 }, verify,
  };
  await store.commit(manifest);
  return manifest;
}

function sandbox(actual: PgSourceFacts) {
  const state = { databases: new Set<string>(), restored: [] as Buffer[], unavailable: false, collectedWith: undefined as unknown };
  const cluster: PgCluster = {
    description: 'sandbox:5432',
    startDump: () => Promise.reject(new Error('not used')),
    databaseExists: async (db) => state.databases.has(db),
    createDatabase: async (db) => {
      if (state.unavailable) throw new TidemarkError('SANDBOX_UNAVAILABLE', 'sandbox down');
      state.databases.add(db);
    },
    dropDatabase: async (db) => void state.databases.delete(db),
    renameDatabase: () => Promise.reject(new Error('not used')),
    databaseComment: () => Promise.reject(new Error('not used')),
    setDatabaseComment: () => Promise.reject(new Error('not used')),
    restore: async (_db, input) => void state.restored.push(await buffer(input)),
    collectFacts: async (_db, options) => {
      state.collectedWith = options;
      return actual;
    },
  };
  return { cluster, state };
}

const ctx = testContextFor('artifact.stored.pg.main');

const eventFor = (manifest: Manifest, verify = true): ArtifactStored => ({ ...storedEvent(manifest), verify });

async function setup(actual: PgSourceFacts = FACTS, options: { noSandbox?: boolean } = {}) {
  const store = new ArtifactStore(createMemoryBackend());
  const manifest = await storedArtifact(store);
  const { cluster, state } = sandbox(actual);
  const publisher = recordingPublisher();
  const { published } = publisher;
  const deps: VerifierDeps = { store, sandbox: options.noSandbox ? undefined : cluster, publisher, keys, clock: () => new Date('2025-01-01T00:01:00Z'), randomSuffix: () => 'abc123' };
  return { store, manifest, state, published, deps };
}

describe('artifact.stored handler (verifier)', () => {
  it('restores into a scratch database, compares, records and announces a pass', async () => {
    const { store, manifest, state, published, deps } = await setup();
    const outcome = await handleArtifactStored(eventFor(manifest), deps, ctx());
    expect(outcome).toEqual({ type: 'ack' });
    expect(state.restored[0]?.equals(DUMP)).toBe(true);
    expect(state.collectedWith).toEqual({ tableChecksums: true, probeK: 5 });
    expect(state.databases.size).toBe(0);
    expect((await store.readVerification(manifest))?.status).toBe('passed');
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ subject: 'verify.passed.pg.main', msgId: `verify:${manifest.id}` });
    expect((published[0]?.event.checks as unknown[]).length).toBe(7);
  });

  it('reports every difference when the restored copy does not match', async () => {
    const differs: PgSourceFacts = {
      ...FACTS,
      extensions: [{ name: 'plpgsql', version: '1.0' }],
      tables: [{ schema: 'public', name: 'items', rows: 2, checksum: '2:1' }, { schema: 'public', name: 'notes', rows: 10, checksum: '10:2' }],
      vectorProbes: [{ ...FACTS.vectorProbes[0]!, topKeys: ['1', '2', '3'] }],
    };
    const { store, manifest, published, deps } = await setup(differs);
    const outcome = await handleArtifactStored(eventFor(manifest), deps, ctx());
    expect(outcome).toEqual({ type: 'ack' });
    const record = await store.readVerification(manifest);
    expect(record?.status).toBe('failed');
    expect(record?.error?.code).toBe('VERIFY_MISMATCH');
    expect(published[0]?.subject).toBe('verify.failed.pg.main');
    const failedChecks = (published[0]?.event.checks as { name: string; ok: boolean }[]).filter((c) => !c.ok).map((c) => c.name);
    expect(failedChecks).toEqual(['extension:vector', 'rows:public.items', 'checksum:public.items', 'probe:public.items.embedding']);
  });

  it('fails with the integrity code when the stored bytes were modified, and drops the scratch database', async () => {
    const { store, manifest, state, published, deps } = await setup();
    const original = await buffer(await store.backend.open(manifest.data.key));
    original[Math.floor(original.length / 2)]! ^= 0xff;
    await store.backend.save(manifest.data.key, original);
    await handleArtifactStored(eventFor(manifest), deps, ctx());
    expect(state.databases.size).toBe(0);
    expect(published[0]?.subject).toBe('verify.failed.pg.main');
    expect((published[0]?.event.error as { code: string }).code).toMatch(/^INTEGRITY_/);
  });

  it('skips artifacts that do not ask for verification', async () => {
    const { manifest, published, deps, state } = await setup();
    expect(await handleArtifactStored(eventFor(manifest, false), deps, ctx())).toEqual({ type: 'ack' });
    expect(published).toEqual([]);
    expect(state.restored).toEqual([]);
  });

  it('terminates when the announced artifact has no manifest', async () => {
    const { manifest, published, deps } = await setup();
    const outcome = await handleArtifactStored({ ...eventFor(manifest), artifactId: '20250101T000000Z-ffffffffff' }, deps, ctx());
    expect(outcome.type).toBe('term');
    expect(published).toEqual([]);
  });

  it('fails with CONFIG_INVALID when no sandbox is configured', async () => {
    const { manifest, published, deps } = await setup(FACTS, { noSandbox: true });
    await handleArtifactStored(eventFor(manifest), deps, ctx());
    expect(published[0]).toMatchObject({ subject: 'verify.failed.pg.main', event: { error: { code: 'CONFIG_INVALID' } } });
  });

  it('naks while the sandbox is unreachable, and fails at the last delivery', async () => {
    const { manifest, published, deps, state } = await setup();
    state.unavailable = true;
    expect((await handleArtifactStored(eventFor(manifest), deps, ctx())).type).toBe('nak');
    expect(published).toEqual([]);
    await handleArtifactStored(eventFor(manifest), deps, ctx({ attempt: 5 }));
    expect(published[0]).toMatchObject({ subject: 'verify.failed.pg.main', event: { error: { code: 'SANDBOX_UNAVAILABLE' } } });
  });
});
