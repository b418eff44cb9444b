import { afterEach, describe, expect, it } from 'vitest';
import { RequestBackup, TidemarkError, type QdrantSourceFacts } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { EXPORT_FORMAT, guardPort, SNAPSHOT_FORMAT, type GuardedPort, type QdrantPort } from '@tidemark/qdrant';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import { collectionArtifactId, type BackupDeps } from '../src/backup/collections.js';
import { fakePort, seed, type FakePort } from '@tidemark/testkit';
import { qdrantConfigYaml, recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);

// The agent always talks through guardPort (error mapping, breakers), so the tests do too.
const guarded: GuardedPort[] = [];
const guard = (port: QdrantPort) => {
  const g = guardPort(port, createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }), 'test');
  guarded.push(g);
  return g;
};
afterEach(() => {
  for (const g of guarded.splice(0)) g.shutdown();
});

function setup(port: FakePort = fakePort()) {
  const publisher = recordingPublisher();
  const store = new ArtifactStore(createMemoryBackend());
  const deps: BackupDeps = {
    config: parseConfig(qdrantConfigYaml('http://qdrant.invalid:6333')),
    store,
    portFor: () => guard(port),
    publisher,
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'agent-1', version: '0.1.0' },
    clock: () => new Date('2025-01-02T03:04:06Z'),
  };
  return { port, publisher, store, deps };
}

const command = (fields: Record<string, unknown> = {}) => RequestBackup.parse(fields);
const unavailable = () => Object.assign(new Error('service unavailable'), { status: 503 });

describe('backup.requested.qdrant handler', () => {
  it('snapshots every collection into its own committed artifact and announces each', async () => {
    const { port, publisher, store, deps } = setup();
    await seed(port, 'docs', 30);
    await seed(port, 'faq', 10);
    const ctx = testContext();
    expect(await handleBackupRequested(command(), deps, ctx)).toEqual({ type: 'ack' });

    for (const [collection, count] of [['docs', 30], ['faq', 10]] as const) {
      const id = collectionArtifactId('js:42', collection, ctx.storedAt);
      const manifest = await store.readManifest('qdrant', 'vectors', id);
      expect(manifest).toMatchObject({ engine: 'qdrant', kind: 'snapshot', format: SNAPSHOT_FORMAT, verify: true });
      const source = manifest!.source as unknown as QdrantSourceFacts;
      expect(source).toMatchObject({ collection, pointsCount: count, qdrantVersion: '1.19.0' });
      expect(source.snapshot?.sha256).toBe(source.snapshot?.qdrantSha256);
      expect(manifest!.pipeline.encryption).not.toBeNull();
      expect(await port.listSnapshots(collection)).toEqual([]);
    }
    expect(publisher.subjects()).toEqual([
      'backup.started.qdrant.vectors', 'artifact.stored.qdrant.vectors', 'backup.completed.qdrant.vectors',
      'backup.started.qdrant.vectors', 'artifact.stored.qdrant.vectors', 'backup.completed.qdrant.vectors',
    ]);
  });

  it('announces an already committed artifact again without a second snapshot on redelivery', async () => {
    const { port, publisher, deps } = setup();
    await seed(port, 'docs', 5);
    await handleBackupRequested(command({ collections: ['docs'] }), deps, testContext());
    const outcome = await handleBackupRequested(command({ collections: ['docs'] }), deps, testContext({ attempt: 2 }));
    expect(outcome).toEqual({ type: 'ack' });
    expect(port.calls.createSnapshot).toBe(1);
    const stored = publisher.published.filter((p) => p.subject === 'artifact.stored.qdrant.vectors');
    expect(stored).toHaveLength(2);
    expect(stored[0]?.msgId).toBe(stored[1]?.msgId);
    expect(publisher.subjects().filter((s) => s.startsWith('backup.started'))).toHaveLength(1);
  });

  it('rejects an unknown target as a command: no backup.failed, so no critical alert', async () => {
    const { publisher, deps } = setup();
    const outcome = await handleBackupRequested(command(), deps, testContext({ subject: 'backup.requested.qdrant.nope' }));
    expect(outcome).toMatchObject({ type: 'reject', error: { code: 'TARGET_UNKNOWN', message: expect.stringContaining('no qdrant target named "nope"') } });
    expect(publisher.published).toHaveLength(0);
  });

  it('a failing snapshot download leaves no manifest and no server-side snapshot, and is retried', async () => {
    const { port, publisher, store, deps } = setup();
    await seed(port, 'docs', 20);
    port.failNext('downloadSnapshot', unavailable());
    const outcome = await handleBackupRequested(command({ collections: ['docs'] }), deps, testContext());
    expect(outcome.type).toBe('nak');
    expect(await store.listManifests()).toEqual([]);
    expect(await port.listSnapshots('docs')).toEqual([]);
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'backup.failed.qdrant.vectors', event: { final: false, error: { code: 'SOURCE_UNAVAILABLE', retryable: true } } });

    const last = await handleBackupRequested(command({ collections: ['docs'] }), deps, testContext({ attempt: 5 }));
    expect(last.type).toBe('ack');
  });

  it('a failure on the last attempt is final', async () => {
    const { port, publisher, store, deps } = setup();
    await seed(port, 'docs', 20);
    port.failNext('createSnapshot', unavailable());
    const outcome = await handleBackupRequested(command({ collections: ['docs'] }), deps, testContext({ attempt: 5 }));
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'backup.failed.qdrant.vectors', event: { final: true, attempt: 5 } });
    expect(await store.listManifests()).toEqual([]);
    expect(await port.listSnapshots('docs')).toEqual([]);
  });

  it('an incremental without an earlier export makes a full export, the next one names it as parent', async () => {
    const { port, store, deps } = setup();
    await seed(port, 'docs', 40, { ts: 1 });
    const first = testContext({ streamSequence: 1 });
    expect(await handleBackupRequested(command({ kind: 'incremental', collections: ['docs'] }), deps, first)).toEqual({ type: 'ack' });
    const fullId = collectionArtifactId('js:1', 'docs', first.storedAt);
    const full = await store.readManifest('qdrant', 'vectors', fullId);
    expect(full).toMatchObject({ kind: 'export', format: EXPORT_FORMAT });
    expect(full?.parentId).toBeUndefined();
    expect((full!.source as unknown as QdrantSourceFacts).incremental).toEqual({ field: 'updatedAt', highWater: 1 });

    await seed(port, 'docs', 5, { start: 100, ts: 2 });
    const second = testContext({ streamSequence: 2, storedAt: new Date('2025-01-02T04:00:00Z') });
    expect(await handleBackupRequested(command({ kind: 'incremental', collections: ['docs'] }), deps, second)).toEqual({ type: 'ack' });
    const delta = await store.readManifest('qdrant', 'vectors', collectionArtifactId('js:2', 'docs', second.storedAt));
    expect(delta).toMatchObject({ kind: 'incremental', format: EXPORT_FORMAT, parentId: fullId });
    expect((delta!.source as unknown as QdrantSourceFacts).incremental).toEqual({ field: 'updatedAt', parentHighWater: 1, highWater: 2 });
  });

  it('refuses incrementals on a target without a timestamp field', async () => {
    const { port, publisher, deps } = setup();
    await seed(port, 'docs', 5);
    const outcome = await handleBackupRequested(command({ kind: 'incremental' }), deps, testContext({ subject: 'backup.requested.qdrant.plain' }));
    expect(outcome.type).toBe('term');
    expect(publisher.published[0]).toMatchObject({ event: { error: { code: 'COMMAND_INVALID' } } });
  });

  it('backs up only the target\'s collections, unencrypted when the target says so', async () => {
    const { port, store, deps } = setup();
    await seed(port, 'docs', 5);
    await seed(port, 'other', 5);
    expect(await handleBackupRequested(command({ kind: 'export' }), deps, testContext({ subject: 'backup.requested.qdrant.plain' }))).toEqual({ type: 'ack' });
    const manifests = await store.listManifests({ engine: 'qdrant', target: 'plain' });
    expect(manifests.map((m) => (m.source as unknown as QdrantSourceFacts).collection)).toEqual(['docs']);
    expect(manifests[0]?.pipeline.encryption).toBeNull();
  });

  it('a checksum mismatch is a final failure and leaves nothing behind', async () => {
    const { port, store, deps } = setup();
    await seed(port, 'docs', 5);
    const lying = Object.assign(Object.create(port) as FakePort, { createSnapshot: async (name: string) => ({ ...(await port.createSnapshot(name)), checksum: '0'.repeat(64) }) });
    const outcome = await handleBackupRequested(command({ collections: ['docs'] }), { ...deps, portFor: () => guard(lying) }, testContext());
    expect(outcome.type).toBe('term');
    expect(await store.listManifests()).toEqual([]);
    expect(await port.listSnapshots('docs')).toEqual([]);
  });

  it('a storage outage is retryable', async () => {
    const { port, store, deps } = setup();
    await seed(port, 'docs', 5);
    const broken = Object.assign(Object.create(store) as ArtifactStore, { saveData: async () => { throw new TidemarkError('STORAGE_UNAVAILABLE', 'down'); } });
    const outcome = await handleBackupRequested(command({ collections: ['docs'] }), { ...deps, store: broken }, testContext());
    expect(outcome.type).toBe('nak');
    expect(await port.listSnapshots('docs')).toEqual([]);
  });
});
