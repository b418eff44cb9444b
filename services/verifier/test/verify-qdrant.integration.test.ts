// The verifier against Qdrant test doubles (or real Qdrant with TIDEMARK_TEST_PROVIDER=containers):
// artifacts are made on a source Qdrant with @tidemark/qdrant's snapshot/export building blocks
// through the real pipeline (gzip + encryption) into an fs ArtifactStore, then proven by restore
// into scratch collections of a separate sandbox Qdrant through the real client adapter.
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '@tidemark/contracts';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { createQdrantPort, guardPort, type GuardedPort, type QdrantPoint } from '@tidemark/qdrant';
import { makeTempDir, recordingPublisher, removeTempDir, startQdrant, storedEvent, testContextFor, testProvider, type QdrantTestServer } from '@tidemark/testkit';
import { handleArtifactStored as handleArtifactStoredUnsettled, type VerifierDeps } from '../src/handlers/artifact-stored.js';
import { storeExportArtifact, storeIncrementalArtifact, storeSnapshotArtifact } from './qdrant-artifacts.js';
import { settling } from '@tidemark/testkit';
const handleArtifactStored = settling(handleArtifactStoredUnsettled);

const logger = createLogger('verifier-qdrant-it', { TIDEMARK_LOG_LEVEL: 'silent' });
const ctx = testContextFor('artifact.stored.qdrant.vectors');

function points(from: number, count: number, ts: number): QdrantPoint[] {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return { id: n, vector: Array.from({ length: 16 }, (_, j) => Math.fround(Math.cos(n * 3 + j))), payload: { n, text: `doc ${n}`, updatedAt: ts } };
  });
}

describe('verifier against qdrant', () => {
  let sourceServer: QdrantTestServer;
  let sandboxServer: QdrantTestServer;
  let source: GuardedPort;
  let sandbox: GuardedPort;
  let dir: string;
  let store: ArtifactStore;
  let deps: VerifierDeps;
  let published: ReturnType<typeof recordingPublisher>['published'];
  const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '55'.repeat(32) });

  const sandboxCollections = async (): Promise<string[]> => {
    const response = await fetch(`${sandboxServer.url}/collections`);
    const body = (await response.json()) as { result: { collections: { name: string }[] } };
    return body.result.collections.map((c) => c.name);
  };

  beforeAll(async () => {
    [sourceServer, sandboxServer] = await Promise.all([startQdrant(), startQdrant()]);
    source = guardPort(createQdrantPort({ url: sourceServer.url }), logger, 'source', { timeoutMs: 10_000 });
    sandbox = guardPort(createQdrantPort({ url: sandboxServer.url }), logger, 'sandbox', { timeoutMs: 10_000 });
    await source.createCollection('docs', { vectors: { size: 16, distance: 'Cosine' } });
    for (let i = 0; i < 900; i += 300) await source.upsert('docs', points(i, 300, 1));
    await source.upsert('docs', [{ id: '5c56c793-69f3-4fbf-87e6-c4bf54c28c26', vector: Array(16).fill(0.25), payload: { uuid: true, updatedAt: 1 } }]);
    dir = await makeTempDir('tidemark-verifier-qdrant-');
    store = new ArtifactStore(await createBackend({ type: 'fs', root: dir }));
    const recorder = recordingPublisher();
    published = recorder.published;
    deps = { store, sandbox: undefined, sandboxQdrant: sandbox, publisher: recorder, keys, clock: () => new Date() };
  });

  afterAll(async () => {
    source?.shutdown();
    sandbox?.shutdown();
    await store?.backend.close();
    await Promise.all([sourceServer?.stop(), sandboxServer?.stop()]);
    if (dir) await removeTempDir(dir);
  });

  it('passes an intact snapshot and leaves no scratch collection', async () => {
    const manifest = await storeSnapshotArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: '20250101T000000Z-1111111111' });
    expect(await source.listSnapshots('docs')).toEqual([]);
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toEqual({ type: 'ack' });
    const last = published.at(-1)!;
    expect(last.subject).toBe('verify.passed.qdrant.vectors');
    const checks = last.event['checks'] as { name: string; ok: boolean; actual?: unknown }[];
    expect(checks[0]).toMatchObject({ name: 'points count', ok: true, actual: 901 });
    expect(checks.some((c) => c.name.startsWith('probe '))).toBe(true);
    expect(checks.every((c) => c.ok)).toBe(true);
    expect((await store.readVerification(manifest))?.status).toBe('passed');
    expect(await sandboxCollections()).toEqual([]);
  });

  it('passes an intact export chain (export + one incremental) and leaves no scratch collection', async () => {
    await source.createCollection('chain', { vectors: { size: 16, distance: 'Dot' } });
    await source.upsert('chain', points(0, 200, 1));
    const full = await storeExportArtifact(source, store, keys, { collection: 'chain', target: 'vectors', id: '20250101T000000Z-2222222222' });
    await source.upsert('chain', [...points(200, 20, 2), ...points(10, 5, 3)]);
    await source.deletePoints('chain', [0, 99, 150]);
    const delta = await storeIncrementalArtifact(source, store, keys, full, { collection: 'chain', target: 'vectors', id: '20250101T000100Z-3333333333' });
    expect(delta.parentId).toBe(full.id);
    expect(await handleArtifactStored(storedEvent(delta), deps, ctx())).toEqual({ type: 'ack' });
    const last = published.at(-1)!;
    expect(last.subject).toBe('verify.passed.qdrant.vectors');
    const checks = last.event['checks'] as { name: string; ok: boolean; actual?: unknown }[];
    expect(checks[0]).toMatchObject({ name: 'points count', ok: true, actual: 217 });
    expect(checks.every((c) => c.ok)).toBe(true);
    expect(await sandboxCollections()).toEqual([]);
  });

  it('fails a snapshot with a flipped byte with an integrity code and leaves no scratch collection', async () => {
    const manifest: Manifest = await storeSnapshotArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: '20250101T000200Z-4444444444' });
    const stored = await buffer(await store.backend.open(manifest.data.key));
    stored[Math.floor(stored.length / 2)]! ^= 0x01;
    await store.backend.save(manifest.data.key, stored);
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toMatchObject({ type: 'term' });
    const last = published.at(-1)!;
    expect(last.subject).toBe('verify.failed.qdrant.vectors');
    expect((last.event['error'] as { code: string }).code).toMatch(/^INTEGRITY_/);
    expect((await store.readVerification(manifest))?.status).toBe('failed');
    expect(await sandboxCollections()).toEqual([]);
  });

  // Fault injection needs the double.
  it.skipIf(testProvider() === 'containers')('naks when the sandbox answers 503 mid-verification, and still deletes the scratch collection', async () => {
    const manifest = await storeSnapshotArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: '20250101T000300Z-5555555555' });
    const before = published.length;
    // After the upload restored the scratch collection: the compare's count fails.
    sandboxServer.faults.failNext(1, 503, '/collections/tidemark_verify_5555555555_ff00ff/points/count');
    const outcome = await handleArtifactStored(storedEvent(manifest), { ...deps, randomSuffix: () => 'ff00ff' }, ctx());
    expect(outcome.type).toBe('nak');
    expect(published.length).toBe(before);
    expect(sandboxServer.requests().some((r) => r.path.includes('tidemark_verify_5555555555_ff00ff/snapshots/upload'))).toBe(true);
    expect(sandboxServer.requests().some((r) => r.status === 503 && r.path.endsWith('ff00ff/points/count'))).toBe(true);
    expect(await sandboxCollections()).toEqual([]);
  });
});
