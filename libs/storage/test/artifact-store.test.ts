import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { TidemarkError, type Manifest, type VerificationRecord } from '@tidemark/contracts';
import { ArtifactStore, artifactKeys, createFsBackend, createMemoryBackend, type StorageBackend } from '@tidemark/storage';
import { readText, sampleManifest } from './helpers.js';

const roots: string[] = [];
afterAll(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

const backends: Record<string, () => Promise<StorageBackend>> = {
  memory: async () => createMemoryBackend(),
  fs: async () => {
    const root = await mkdtemp(join(tmpdir(), 'tidemark-artifacts-'));
    roots.push(root);
    return createFsBackend({ root });
  },
};

/** Records the order of removals while passing everything through. */
function recordingRemovals(backend: StorageBackend, removed: string[]): StorageBackend {
  return { ...backend, list: (prefix) => backend.list(prefix), remove: async (key) => {
    removed.push(key);
    await backend.remove(key);
  } };
}

const HOUR = 3_600_000;
const later = (hours: number): Date => new Date(Date.now() + hours * HOUR);

for (const [name, makeBackend] of Object.entries(backends)) {
  describe(`artifact store on ${name}`, () => {
    const store = async (): Promise<ArtifactStore> => new ArtifactStore(await makeBackend());

    async function storedArtifact(artifacts: ArtifactStore, id: string, overrides: Partial<Manifest> = {}) {
      const { key, storedBytes } = await artifacts.saveData(overrides.engine ?? 'pg', overrides.target ?? 'orders', id, Readable.from([Buffer.from(`bytes of ${id}`)]));
      return sampleManifest({ id, dataKey: key, ...overrides, data: { key, storedBytes, rawBytes: storedBytes, sha256: 'b'.repeat(64) } });
    }

    it('saved data stays invisible until the manifest commits it', async () => {
      const artifacts = await store();
      const manifest = await storedArtifact(artifacts, '20240501T020304Z-0123456789');
      expect(manifest.data.key).toMatch(/^artifacts\/pg\/orders\/20240501T020304Z-0123456789\/data-[0-9a-f]+\.bin$/);
      expect(await artifacts.readManifest('pg', 'orders', manifest.id)).toBeUndefined();
      expect(await artifacts.listManifests()).toEqual([]);
      await artifacts.commit(manifest);
      expect(await artifacts.readManifest('pg', 'orders', manifest.id)).toEqual(manifest);
      expect(await artifacts.listManifests()).toEqual([manifest]);
      expect(await readText(await artifacts.openData(manifest))).toBe(`bytes of ${manifest.id}`);
    });

    it('each attempt saves data under a fresh key', async () => {
      const artifacts = await store();
      const first = await artifacts.saveData('pg', 'orders', 'a1', Readable.from([Buffer.from('one')]));
      const second = await artifacts.saveData('pg', 'orders', 'a1', Readable.from([Buffer.from('two')]), 3);
      expect(first.key).not.toBe(second.key);
      expect(second.storedBytes).toBe(3);
    });

    it('commit refuses an invalid manifest and writes nothing', async () => {
      const artifacts = await store();
      const manifest = await storedArtifact(artifacts, 'a1');
      const invalid = { ...manifest, data: { ...manifest.data, sha256: 'not-hex' } };
      const error = await artifacts.commit(invalid).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TidemarkError);
      expect((error as TidemarkError).code).toBe('INTEGRITY_FORMAT');
      expect((error as TidemarkError).message).toContain('data.sha256');
      expect(await artifacts.readManifest('pg', 'orders', 'a1')).toBeUndefined();
    });

    it('a manifest that is not valid JSON reads as INTEGRITY_FORMAT and is skipped by listings', async () => {
      const artifacts = await store();
      const good = await storedArtifact(artifacts, 'good');
      await artifacts.commit(good);
      await artifacts.backend.save(artifactKeys('pg', 'orders', 'bad').manifest, Buffer.from('{ not json'));
      const error = await artifacts.readManifest('pg', 'orders', 'bad').catch((e: unknown) => e);
      expect((error as TidemarkError).code).toBe('INTEGRITY_FORMAT');
      const invalid: string[] = [];
      expect(await artifacts.listManifests({}, (key) => invalid.push(key))).toEqual([good]);
      expect(invalid).toEqual(['artifacts/pg/orders/bad/manifest.json']);
    });

    it('lists manifests newest first and filters by engine and target', async () => {
      const artifacts = await store();
      const old = await storedArtifact(artifacts, 'id-1', { createdAt: '2024-01-01T00:00:00.000Z' });
      const newest = await storedArtifact(artifacts, 'id-2', { createdAt: '2024-03-01T00:00:00.000Z' });
      const sameTimeLowerId = await storedArtifact(artifacts, 'id-0', { createdAt: '2024-03-01T00:00:00.000Z' });
      const otherTarget = await storedArtifact(artifacts, 'id-3', { target: 'billing', createdAt: '2024-02-01T00:00:00.000Z' });
      const qdrant = await storedArtifact(artifacts, 'id-4', { engine: 'qdrant', target: 'orders', createdAt: '2024-04-01T00:00:00.000Z' });
      for (const manifest of [old, newest, sameTimeLowerId, otherTarget, qdrant]) await artifacts.commit(manifest);
      const ids = (manifests: { id: string }[]) => manifests.map((m) => m.id);
      expect(ids(await artifacts.listManifests())).toEqual(['id-4', 'id-2', 'id-0', 'id-3', 'id-1']);
      expect(ids(await artifacts.listManifests({ engine: 'pg' }))).toEqual(['id-2', 'id-0', 'id-3', 'id-1']);
      expect(ids(await artifacts.listManifests({ engine: 'pg', target: 'orders' }))).toEqual(['id-2', 'id-0', 'id-1']);
      expect(ids(await artifacts.listManifests({ target: 'orders' }))).toEqual(['id-4', 'id-2', 'id-0', 'id-1']);
    });

    it('writes and reads a verification record beside the manifest', async () => {
      const artifacts = await store();
      const manifest = await storedArtifact(artifacts, 'v1');
      await artifacts.commit(manifest);
      expect(await artifacts.readVerification(manifest)).toBeUndefined();
      const record: VerificationRecord = { artifactId: 'v1', status: 'passed', verifiedAt: '2024-05-02T00:00:00.000Z', durationMs: 1200, checks: [{ name: 'rows', ok: true }] };
      await artifacts.writeVerification(manifest, record);
      expect(await artifacts.readVerification(manifest)).toEqual(record);
    });

    it('remove takes the manifest away first, then everything under the artifact', async () => {
      const removed: string[] = [];
      const backend = await makeBackend();
      const artifacts = new ArtifactStore(recordingRemovals(backend, removed));
      const manifest = await storedArtifact(artifacts, 'r1');
      await artifacts.commit(manifest);
      await artifacts.writeVerification(manifest, { artifactId: 'r1', status: 'failed', verifiedAt: '2024-05-02T00:00:00.000Z', durationMs: 1, checks: [] });
      const keeper = await storedArtifact(artifacts, 'r2');
      await artifacts.commit(keeper);
      await artifacts.remove(manifest);
      expect(removed[0]).toBe('artifacts/pg/orders/r1/manifest.json');
      expect([...removed].sort()).toEqual([manifest.data.key, 'artifacts/pg/orders/r1/manifest.json', 'artifacts/pg/orders/r1/verification.json'].sort());
      expect(await artifacts.listManifests()).toEqual([keeper]);
      const left: string[] = [];
      for await (const object of backend.list('artifacts/pg/orders/r1/')) left.push(object.key);
      expect(left).toEqual([]);
    });

    it('orphan sweep removes uncommitted data older than the grace period and keeps younger orphans', async () => {
      const artifacts = await store();
      const committed = await storedArtifact(artifacts, 'committed');
      await artifacts.commit(committed);
      await artifacts.writeVerification(committed, { artifactId: 'committed', status: 'passed', verifiedAt: '2024-05-02T00:00:00.000Z', durationMs: 1, checks: [] });
      // A failed first attempt of the committed artifact, and an artifact that never committed.
      const failedAttempt = await artifacts.saveData('pg', 'orders', 'committed', Readable.from([Buffer.from('partial')]));
      const abandoned = await artifacts.saveData('pg', 'orders', 'abandoned', Readable.from([Buffer.from('partial')]));

      const young = await artifacts.sweepOrphans(HOUR, later(0.5));
      expect(young.removed).toEqual([]);
      expect([...young.kept].sort()).toEqual([abandoned.key, failedAttempt.key].sort());

      const old = await artifacts.sweepOrphans(HOUR, later(2));
      expect([...old.removed].sort()).toEqual([abandoned.key, failedAttempt.key].sort());
      expect(old.kept).toEqual([]);
      expect(await artifacts.listManifests()).toEqual([committed]);
      expect(await readText(await artifacts.openData(committed))).toBe('bytes of committed');
      expect(await artifacts.readVerification(committed)).toBeDefined();
    });

    it('orphan sweep leaves an artifact with an unreadable manifest alone', async () => {
      const artifacts = await store();
      const data = await artifacts.saveData('pg', 'orders', 'broken', Readable.from([Buffer.from('x')]));
      await artifacts.backend.save(artifactKeys('pg', 'orders', 'broken').manifest, Buffer.from('{ not json'));
      const result = await artifacts.sweepOrphans(HOUR, later(2));
      expect(result.removed).toEqual([]);
      expect((await artifacts.backend.stat(data.key)).size).toBe(1);
    });
  });
}
