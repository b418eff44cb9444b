import { afterEach, describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { guardPort, type GuardedPort } from '@tidemark/qdrant';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import { collectionArtifactId, type BackupDeps } from '../src/backup/collections.js';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { pickArtifact } from '../src/restore/collection.js';
import { fakePort, seed } from '@tidemark/testkit';
import { qdrantConfigYaml, recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

const guarded: GuardedPort[] = [];
afterEach(() => {
  for (const g of guarded.splice(0)) g.shutdown();
});

async function backedUp(kind: 'snapshot' | 'export' = 'snapshot') {
  const port = fakePort();
  await seed(port, 'docs', 25);
  const publisher = recordingPublisher();
  const store = new ArtifactStore(createMemoryBackend());
  const g = guardPort(port, createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }), 'test');
  guarded.push(g);
  const deps: BackupDeps = {
    config: parseConfig(qdrantConfigYaml('http://qdrant.invalid:6333')),
    store,
    portFor: () => g,
    publisher,
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'agent-1', version: '0.1.0' },
    clock: () => new Date('2025-01-02T03:04:06Z'),
  };
  const ctx = testContext();
  expect(await handleBackupRequested(RequestBackup.parse({ kind, collections: ['docs'] }), deps, ctx)).toEqual({ type: 'ack' });
  publisher.published.length = 0;
  return { port, publisher, store, deps, artifactId: collectionArtifactId('js:42', 'docs', ctx.storedAt) };
}

const restore = (fields: Record<string, unknown> = {}) => RequestRestore.parse(fields);
const restoreCtx = (overrides = {}) => testContext({ subject: 'restore.requested.qdrant.vectors', streamSequence: 77, storedAt: new Date('2025-02-03T04:05:06Z'), ...overrides });

describe('restore.requested.qdrant handler', () => {
  it('uploads a snapshot into a new collection with priority and checksum passed explicitly', async () => {
    const { port, publisher, store, deps, artifactId } = await backedUp();
    const outcome = await handleRestoreRequested(restore({ collection: 'docs' }), deps, restoreCtx());
    expect(outcome).toEqual({ type: 'ack' });
    const manifest = await store.readManifest('qdrant', 'vectors', artifactId);
    const snapshot = (manifest!.source as { snapshot: { sha256: string } }).snapshot;
    expect(port.uploads).toEqual([{ name: 'docs_restore_20250203040506', checksum: snapshot.sha256, priority: 'snapshot' }]);
    expect(port.all('docs_restore_20250203040506')).toEqual(port.all('docs'));
    expect(publisher.subjects()).toEqual(['restore.started.qdrant.vectors', 'restore.completed.qdrant.vectors']);
    expect(publisher.published[1]?.event).toMatchObject({ artifactId, database: 'docs_restore_20250203040506' });
  });

  it('refuses to restore over an existing collection without overwrite', async () => {
    const { port, publisher, deps } = await backedUp();
    const outcome = await handleRestoreRequested(restore({ intoCollection: 'docs' }), deps, restoreCtx());
    expect(outcome.type).toBe('term');
    expect(publisher.published).toHaveLength(1);
    expect(publisher.published[0]).toMatchObject({ subject: 'restore.failed.qdrant.vectors', event: { database: 'docs', error: { code: 'RESTORE_TARGET_EXISTS' } } });
    expect(port.uploads).toEqual([]);
  });

  it('with overwrite verifies the restored copy, keeps the old data as a snapshot and aliases the name to the copy', async () => {
    const { port, publisher, deps } = await backedUp('export');
    await port.deletePoints('docs', [1, 2]);
    const outcome = await handleRestoreRequested(restore({ intoCollection: 'docs', overwrite: true }), deps, restoreCtx());
    expect(outcome).toEqual({ type: 'ack' });
    const completed = publisher.published.at(-1)!.event as { database: string; previousDatabaseKeptAs: string };
    expect(completed.previousDatabaseKeptAs).toMatch(/^snapshot \S+ of collection docs$/);
    expect(completed.database).toMatch(/^docs_restoring_/);
    expect(port.all(completed.database)).toHaveLength(25);
    expect(await port.listAliases()).toContainEqual({ alias: 'docs', collection: completed.database });
  });

  it('a snapshot whose restored count differs is removed and fails', async () => {
    const { port, publisher, deps } = await backedUp();
    // Qdrant reports a count other than the manifest's after the upload.
    const lying = Object.assign(Object.create(port), { count: async () => 0 });
    const g = guardPort(lying, createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }), 'lying');
    guarded.push(g);
    const outcome = await handleRestoreRequested(restore({ collection: 'docs' }), { ...deps, portFor: () => g }, restoreCtx());
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)).toMatchObject({ event: { error: { code: 'VERIFY_MISMATCH' } } });
    expect(await port.collectionExists('docs_restore_20250203040506')).toBe(false);
  });

  it('picks the newest verified artifact of the collection, else the newest', async () => {
    const { store, artifactId } = await backedUp();
    expect((await pickArtifact(store, 'vectors', undefined, 'docs')).id).toBe(artifactId);
    await expect(pickArtifact(store, 'vectors', undefined, 'other')).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
    await expect(pickArtifact(store, 'vectors', 'nope', undefined)).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
  });

  it('rejects an unknown target as a command: no restore.failed, so no critical alert', async () => {
    const { publisher, deps } = await backedUp();
    const before = publisher.published.length;
    const outcome = await handleRestoreRequested(restore(), deps, restoreCtx({ subject: 'restore.requested.qdrant.nope' }));
    expect(outcome).toMatchObject({ type: 'reject', error: { code: 'TARGET_UNKNOWN' } });
    expect(publisher.published).toHaveLength(before);
  });
});
