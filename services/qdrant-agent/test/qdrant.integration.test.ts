// The backup and restore handlers against the Qdrant test double (or a real Qdrant with
// TIDEMARK_TEST_PROVIDER=containers) through the real client adapter, the real pipeline (gzip +
// encryption) and filesystem storage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore, type QdrantSourceFacts } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { createQdrantPort, guardPort, type GuardedPort } from '@tidemark/qdrant';
import { makeTempDir, removeTempDir, startQdrant, type QdrantTestServer, points, scrollAll, seedDocs } from '@tidemark/testkit';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import { collectionArtifactId, type BackupDeps } from '../src/backup/collections.js';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { qdrantConfigYaml, recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

const silent = createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' });

describe('qdrant-agent against the qdrant double', () => {
  let server: QdrantTestServer;
  let port: GuardedPort;
  let dir: string;
  let store: ArtifactStore;
  let deps: BackupDeps;
  let publisher: ReturnType<typeof recordingPublisher>;
  let sequence = 100;

  beforeAll(async () => {
    server = await startQdrant();
    port = guardPort(createQdrantPort({ url: server.url }), silent, 'it', { timeoutMs: 10_000, resetTimeoutMs: 200 });
    dir = await makeTempDir('tidemark-qdrant-agent-');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: dir }));
    publisher = recordingPublisher();
    deps = {
      config: parseConfig(qdrantConfigYaml(server.url)),
      store,
      portFor: () => port,
      publisher,
      keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
      agent: { id: 'it-agent', version: '0.0.0' },
      clock: () => new Date(),
    };
    await seedDocs(port);
  });
  afterAll(async () => {
    port?.shutdown();
    await server?.stop();
    if (dir) await removeTempDir(dir);
  });

  const all = (collection: string) => scrollAll(port, collection);
  const backup = async (fields: Record<string, unknown>, overrides: Parameters<typeof testContext>[0] = {}) => {
    const ctx = testContext({ streamSequence: ++sequence, storedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, sequence)), ...overrides });
    const outcome = await handleBackupRequested(RequestBackup.parse(fields), deps, ctx);
    return { outcome, ctx, artifactId: (collection: string) => collectionArtifactId(`js:${ctx.streamSequence}`, collection, ctx.storedAt) };
  };
  const restore = async (fields: Record<string, unknown>) => {
    const ctx = testContext({ subject: 'restore.requested.qdrant.vectors', streamSequence: ++sequence, storedAt: new Date(Date.UTC(2025, 1, 1, 0, 0, sequence)) });
    return handleRestoreRequested(RequestRestore.parse(fields), deps, ctx);
  };

  it('snapshot backup → restore into a new collection equals the source, no snapshot left on qdrant', async () => {
    const { outcome, artifactId } = await backup({ collections: ['docs'] });
    expect(outcome).toEqual({ type: 'ack' });
    const manifest = await store.readManifest('qdrant', 'vectors', artifactId('docs'));
    const source = manifest!.source as unknown as QdrantSourceFacts;
    expect(source).toMatchObject({ collection: 'docs', pointsCount: 1201 });
    if (source.snapshot?.qdrantSha256) expect(source.snapshot.sha256).toBe(source.snapshot.qdrantSha256);
    expect(await port.listSnapshots('docs')).toEqual([]);

    expect(await restore({ artifactId: artifactId('docs'), intoCollection: 'docs_from_snapshot' })).toEqual({ type: 'ack' });
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.completed.qdrant.vectors', event: { database: 'docs_from_snapshot' } });
    expect(await all('docs_from_snapshot')).toEqual(await all('docs'));
  });

  it('export + incremental chain → restore gives identical points', async () => {
    await port.createCollection('chain', { vectors: { size: 16, distance: 'Dot' } });
    await port.upsert('chain', points(0, 100, 1));
    const full = await backup({ kind: 'incremental', collections: ['chain'] });
    expect(full.outcome).toEqual({ type: 'ack' });
    expect(await store.readManifest('qdrant', 'vectors', full.artifactId('chain'))).toMatchObject({ kind: 'export' });

    await port.upsert('chain', [...points(100, 10, 2), ...points(5, 3, 3)]);
    await port.deletePoints('chain', [0, 50, 99]);
    const d1 = await backup({ kind: 'incremental', collections: ['chain'] });
    expect(await store.readManifest('qdrant', 'vectors', d1.artifactId('chain'))).toMatchObject({ kind: 'incremental', parentId: full.artifactId('chain') });

    await port.deletePoints('chain', [100]);
    await port.upsert('chain', points(0, 1, 4));
    const d2 = await backup({ kind: 'incremental', collections: ['chain'] });
    expect(await store.readManifest('qdrant', 'vectors', d2.artifactId('chain'))).toMatchObject({ kind: 'incremental', parentId: d1.artifactId('chain') });

    expect(await restore({ collection: 'chain', intoCollection: 'chain_copy' })).toEqual({ type: 'ack' });
    expect(await all('chain_copy')).toEqual(await all('chain'));
  });

  it('restore over an existing collection without overwrite → RESTORE_TARGET_EXISTS', async () => {
    const outcome = await restore({ collection: 'docs', intoCollection: 'docs' });
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.qdrant.vectors', event: { error: { code: 'RESTORE_TARGET_EXISTS' } } });
  });

  it('qdrant answering 503 again and again → retryable failures, then a final backup.failed; no manifest, no snapshot left', async () => {
    const before = (await store.listManifests()).length;
    // Attempt 1: the snapshot is created, its download fails. Attempt 2: qdrant fails the first
    // snapshot call. Attempt 3: qdrant fails everything for the collection.
    const faults: [number, string][] = [[1, '/collections/docs/snapshots/'], [1, '/collections/docs/snapshots'], [10_000, '/collections/docs']];
    const seen = server.requests().length;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [count, prefix] = faults[attempt - 1]!;
      server.faults.failNext(count, 503, prefix);
      const ctx = testContext({ streamSequence: 999, storedAt: new Date('2025-03-01T00:00:00Z'), attempt, maxDeliver: 3 });
      const outcome = await handleBackupRequested(RequestBackup.parse({ collections: ['docs'] }), deps, ctx);
      server.faults.reset();
      const failedEvent = publisher.published.at(-1)!;
      expect(failedEvent).toMatchObject({ subject: 'backup.failed.qdrant.vectors', event: { attempt, final: attempt === 3 } });
      expect((failedEvent.event as { error: { retryable: boolean } }).error.retryable).toBe(true);
      expect(outcome.type).toBe(attempt === 3 ? 'term' : 'nak');
    }
    const requests = server.requests().slice(seen).map((r) => `${r.method} ${r.path} ${r.status}`);
    expect(requests.filter((r) => r.startsWith('POST /collections/docs/snapshots '))).toHaveLength(1);
    expect(requests.filter((r) => /^DELETE \/collections\/docs\/snapshots\/\S+ 200$/.test(r))).toHaveLength(1);
    expect((await store.listManifests()).length).toBe(before);
    expect(await port.listSnapshots('docs')).toEqual([]);
  });
});
