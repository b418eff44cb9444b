// Here, not in services/storage/test, because it drives two services (services never import services).
// The storage service's chunk garbage collection on snapshots the files-agent's handlers made, on
// a real filesystem storage root and on s3rver: pruned snapshots' packs are condemned by one
// collection and deleted by a later one after the grace, retained snapshots still restore; and a
// backup running while collections run loses nothing (it deduplicated against a pack the collector
// condemned meanwhile: the pack is kept while the backup lives and rescued once it committed).
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore, type Manifest } from '@tidemark/contracts';
import { filesSourceOf, parseConfig } from '@tidemark/config';
import { ArtifactStore, createBackend, createS3Backend, type StorageBackend } from '@tidemark/storage';
import { keyRingOf, loadKeyRing } from '@tidemark/pipeline';
import { compareDirectoryWithTree, openSource, type FilesSource } from '@tidemark/files';
import { committedTree } from '@tidemark/agent';
import { createLogger } from '@tidemark/runtime';
import { handleBackupRequested as backupUnsettled, handleRestoreRequested as restoreUnsettled, treeArtifactId, type AgentDeps } from '@tidemark/files-agent-service';
import { Catalog, bucketTreeReader, listSnapshotTree, runChunkGc, runRetention, type ChunkGcResult } from '@tidemark/storage-service';
import {
  makeTempDir, recordingPublisher, removeTempDir, settling, startS3, testContextFor, writeDocuments, type S3Endpoint,
} from '@tidemark/testkit';

const backup = settling(backupUnsettled);
const restore = settling(restoreUnsettled);
const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '66'.repeat(32) });
const logger = createLogger('chunk-gc-e2e', { TIDEMARK_LOG_LEVEL: 'silent' });
const HOUR = 3600_000;
const settings = { graceMs: HOUR, sessionStaleMs: 6 * HOUR };

let s3: S3Endpoint | undefined;
beforeAll(async () => {
  s3 = await startS3();
}, 60_000);
afterAll(async () => {
  await s3?.stop();
});

const backends: Record<'fs' | 's3rver', (root: string, name: string) => Promise<StorageBackend>> = {
  fs: (root) => createBackend({ type: 'fs', root: join(root, 'storage') }),
  s3rver: (_root, name) => createS3Backend({ endPoint: s3!.endpoint, useSSL: false, accessKey: s3!.accessKey, secretKey: s3!.secretKey, region: s3!.region, bucket: `gc-${name}`, prefix: 'tidemark' }),
};

describe.each(Object.keys(backends) as Array<keyof typeof backends>)('chunk garbage collection on %s', (kind) => {
  let root: string;
  let store: ArtifactStore;
  let agent: AgentDeps;
  /** Wraps the docs source, so a test can hold a backup in the middle of reading. */
  let wrapSource: (source: FilesSource) => FilesSource = (source) => source;
  let runs = 0;

  beforeEach(async () => {
    runs += 1;
    root = await makeTempDir('tidemark-chunk-gc');
    store = new ArtifactStore(await backends[kind](root, `${Date.now().toString(36)}-${runs}`));
    const config = parseConfig(
      `defaults: { encrypt: true, verify: false, compression: zstd }
files: { workDir: ${join(root, 'work')} }
targets:
  - { name: docs, engine: files, files: { source: { kind: directory, path: ${join(root, 'docs')} } } }
`,
      join(root, 'tidemark.yaml'),
      {},
    );
    agent = {
      config, store, publisher: recordingPublisher(), keys, progress: { publish: () => undefined },
      sourceFor: (target) => wrapSource(openSource(filesSourceOf(target, {}))),
      agent: { id: 'files-agent-test', version: '0.1.0' }, clock: () => new Date(),
    };
    await writeDocuments(join(root, 'docs'));
  });
  afterEach(async () => {
    wrapSource = (source) => source;
    await store.backend.close();
    await removeTempDir(root);
  });

  async function backedUp(requestId: string): Promise<Manifest> {
    const ctx = testContextFor('backup.requested.files.docs')();
    expect(await backup(RequestBackup.parse({ requestId }), agent, ctx)).toEqual({ type: 'ack' });
    const manifest = await store.readManifest('files', 'docs', treeArtifactId(requestId, ctx.storedAt));
    expect(manifest, `snapshot of ${requestId} committed`).toBeDefined();
    return manifest!;
  }

  /** Restores a snapshot into a new directory and compares it with its tree by an independent walk. */
  let restores = 0;
  async function restoresIntact(manifest: Manifest): Promise<void> {
    restores += 1;
    const into = join(root, 'restored', `${manifest.id}-${restores}`);
    const outcome = await restore(RequestRestore.parse({ requestId: `restore-${restores}`, artifactId: manifest.id, intoDirectory: into }), agent, testContextFor('restore.requested.files.docs')());
    expect(outcome).toEqual({ type: 'ack' });
    const comparison = await compareDirectoryWithTree(into, committedTree(store, manifest, keys));
    expect(comparison.differences).toEqual([]);
    expect(comparison.ok).toBe(true);
  }

  const collect = (now: Date): Promise<ChunkGcResult> => runChunkGc({
    store, readTree: bucketTreeReader(store, keys), logger, settings, now: () => now,
    repository: { backend: store.backend, keyRing: keys, compression: 'zstd' },
  });
  const packsInBucket = async (): Promise<string[]> => {
    const keysFound: string[] = [];
    for await (const object of store.backend.list('chunks/packs/')) keysFound.push(object.key);
    return keysFound;
  };
  const ok = (result: ChunkGcResult) => {
    if (!result.ok) throw new Error(`collection failed: ${result.error.code}: ${result.error.message}`);
    return result.report;
  };

  it('condemns the packs only pruned snapshots referenced, deletes them after the grace, and the retained snapshot still restores', async () => {
    await backedUp('gc-1');
    // Each later snapshot adds one file of its own: its chunks go to packs of that backup alone
    // (with the tree's segments that changed).
    await writeFile(join(root, 'docs', 'scan.bin'), randomBytes(2 * 1024 * 1024));
    await backedUp('gc-2');
    await writeFile(join(root, 'docs', 'scan.bin'), randomBytes(2 * 1024 * 1024));
    await backedUp('gc-3');
    // Only a mode changes: the new snapshot's own pack holds nothing but its tree's changed segment,
    // which the collection must count as referenced.
    await chmod(join(root, 'docs', 'scan.bin'), 0o600);
    const kept = await backedUp('gc-4');
    const packsBefore = await packsInBucket();

    const catalog = new Catalog(store);
    const retention = await runRetention({
      catalog, store, publisher: recordingPublisher(), logger, orphanGraceMinutes: 60, policies: new Map([['files/docs', { keepLast: 1, maxAgeDays: 0 }]]),
    });
    expect(retention.pruned.map((p) => p.engine)).toEqual(['files', 'files', 'files']);
    expect(retention.kept.map((k) => k.artifactId)).toEqual([kept.id]);

    const now = new Date();
    const first = ok(await collect(now));
    // gc-1's packs also hold what gc-3 still uses (the documents); gc-2's hold only its own scan.
    expect(first.packsCondemned.length).toBeGreaterThan(0);
    expect(first.packsDeleted).toEqual([]);
    expect(await packsInBucket()).toEqual(packsBefore);
    await restoresIntact(kept);

    const tooEarly = ok(await collect(new Date(now.getTime() + HOUR / 2)));
    expect(tooEarly.packsDeleted).toEqual([]);

    const later = ok(await collect(new Date(now.getTime() + 2 * HOUR)));
    expect([...later.packsDeleted].sort()).toEqual([...first.packsCondemned].sort());
    expect(later.bytesDeleted).toBeGreaterThan(2 * 1024 * 1024);
    const packsAfter = await packsInBucket();
    expect(packsAfter.length).toBe(packsBefore.length - later.packsDeleted.length);
    for (const pack of later.packsDeleted) expect(packsAfter.some((key) => key.includes(pack))).toBe(false);
    await restoresIntact(kept);
  });

  it('a backup running while collections run loses nothing: the pack it deduplicated against is held, then rescued', async () => {
    const pruned = await backedUp('race-1');
    await store.remove(pruned);
    const packsOfPruned = await packsInBucket();

    // The next backup opens its session and loads the index (the pruned snapshot's packs are not
    // condemned yet, so it will deduplicate against them), then stops at its first file.
    let reachedRead: () => void = () => {};
    const reading = new Promise<void>((resolve) => (reachedRead = resolve));
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    wrapSource = (source) => ({
      kind: source.kind,
      location: source.location,
      entries: (onProblem) => source.entries(onProblem),
      restat: (entry) => source.restat(entry),
      open: async (entry): Promise<Readable> => {
        reachedRead();
        await released;
        return source.open(entry);
      },
    });
    const running = backedUp('race-2');
    await reading;
    const sessions: string[] = [];
    for await (const object of store.backend.list('chunks/sessions/')) sessions.push(object.key);
    expect(sessions).toHaveLength(1);

    const now = new Date();
    const condemning = ok(await collect(now));
    expect([...condemning.packsCondemned].sort()).toEqual(packsOfPruned.map((key) => key.split('/').at(-1)!.replace(/\.pack$/, '')).sort());
    const heldBack = ok(await collect(new Date(now.getTime() + 2 * HOUR)));
    expect(heldBack.packsDeleted).toEqual([]);
    expect(heldBack.liveSessions).toHaveLength(1);

    release();
    const committed = await running;
    // It deduplicated against the packs it saw before they were condemned: those now hold its chunks.
    expect((committed.source as { reusedChunks: number }).reusedChunks).toBeGreaterThan(0);
    const afterCommit = ok(await collect(new Date(now.getTime() + 3 * HOUR)));
    expect(afterCommit.packsRescued.length).toBeGreaterThan(0);
    expect(afterCommit.packsDeleted).toEqual([]);
    await restoresIntact(committed);
    const later = ok(await collect(new Date(now.getTime() + 6 * HOUR)));
    expect(later.packsDeleted.filter((pack) => afterCommit.packsRescued.includes(pack))).toEqual([]);
    await restoresIntact(committed);
  });

  it('catalog.tree lists a real snapshot read from the bucket', async () => {
    const snapshot = await backedUp('tree-1');
    const catalog = new Catalog(store);
    await catalog.rebuild();
    const readTree = bucketTreeReader(store, keys);
    const top = await listSnapshotTree({ target: 'docs' }, { catalog, readTree });
    expect(top).toMatchObject({ artifactId: snapshot.id, truncated: false });
    expect('entries' in top && top.entries.map((e) => e.path)).toEqual(['cases', 'empty', 'latest', 'line\nbreak.txt', 'readme-again.md', 'readme.md']);
    const cases = await listSnapshotTree({ target: 'docs', artifactId: snapshot.id, path: 'cases', recursive: true }, { catalog, readTree });
    expect('entries' in cases && cases.entries).toEqual([
      expect.objectContaining({ path: 'cases/2024', type: 'dir' }),
      expect.objectContaining({ path: 'cases/2024/big.bin', type: 'file', size: 3 * 1024 * 1024 }),
      expect.objectContaining({ path: 'cases/2024/brief.txt', type: 'file', size: 10_000 }),
    ]);
    expect('entries' in top && top.entries.find((e) => e.path === 'latest')).toMatchObject({ type: 'symlink', linkTarget: 'cases/2024/brief.txt' });
  });

  it('deletes nothing when a snapshot tree cannot be decoded (a key the storage service lacks)', async () => {
    const kept = await backedUp('locked-1');
    await writeFile(join(root, 'docs', 'scan.bin'), randomBytes(1024 * 1024));
    const gone = await backedUp('locked-2');
    await store.remove(gone);
    const before = await packsInBucket();
    const now = new Date();
    const withoutKey = (at: Date) => runChunkGc({
      store, readTree: bucketTreeReader(store, keyRingOf(undefined)), logger, settings, now: () => at,
      repository: { backend: store.backend, keyRing: keys, compression: 'zstd' },
    });
    const result = await withoutKey(now);
    expect(result).toMatchObject({ ok: false, error: { code: 'ENCRYPTION_KEY_MISSING', message: expect.stringContaining(kept.id) } });
    expect((await withoutKey(new Date(now.getTime() + 3 * HOUR))).ok).toBe(false);
    expect(await packsInBucket()).toEqual(before);
  });
});
