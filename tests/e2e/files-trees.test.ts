// The files engine on a tree like the ones it will meet: 100,000 small documents, a 2 GiB sparse
// file, empty directories, symlinks (also dangling and looping), hard links, names with newlines,
// spaces and invalid UTF-8, and files deleted or appended while the backup reads them. Libraries
// directly (libs/files, libs/chunks), real filesystem, real storage: the filesystem backend and
// s3rver. Backup → restore into a new directory → identical by an independent walk; a second
// backup after 1 % of the files changed reads only those and stores only their chunks.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openChunkRepository, type ChunkRepository } from '@tidemark/chunks';
import { TREE_FORMAT, compareDirectoryWithTree, openSource, restoreToDirectory, takeSnapshot, type FilesSource } from '@tidemark/files';
import { committedTree, filesFactsOf, manifestOf } from '@tidemark/agent';
import { encodeStream, keyRingOf, settleFirstCause, type KeyRing } from '@tidemark/pipeline';
import { ArtifactStore, createFsBackend, createS3Backend, type StorageBackend } from '@tidemark/storage';
import type { FilesSourceFacts, Manifest } from '@tidemark/contracts';
import { appendContent, buildTree, makeTempDir, mutateTree, removeTempDir, startS3, type BuiltTree, type S3Endpoint } from '@tidemark/testkit';

/** The 100,000 files on filesystem storage; s3rver (one HTTP server in node) gets a tenth of that, to keep CI under its budget. */
const FS_SMALL_FILES = 100_000;
const S3_SMALL_FILES = 10_000;
const SPARSE_BYTES = 2 * 1024 ** 3;
/** Files that grow while the backup reads them: big enough that the append lands mid-read. */
const LIVE_FILE_BYTES = 4 * 1024 * 1024;
const APPENDED_BYTES = 1024 * 1024;
const STEP_TIMEOUT_MS = 10 * 60_000;

let workDir: string;
/** The tree of the backend under test (each builds its own). */
let sourceRoot: string;
let tree: BuiltTree;
const timings: string[] = [];

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await work();
  timings.push(`${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

beforeAll(async () => {
  workDir = await makeTempDir('tidemark-files-trees');
}, STEP_TIMEOUT_MS);

async function buildSourceTree(index: number, smallFiles: number): Promise<void> {
  sourceRoot = join(workDir, `source-${index}`);
  tree = await timed(`build ${smallFiles} files`, () =>
    buildTree(sourceRoot, {
      seed: `files-trees-${index}`,
      groups: [{ under: 'docs', count: smallFiles, minBytes: 64, maxBytes: 8 * 1024, binaryFraction: 0.3 }],
      sparseFiles: [{ path: 'images/disk.img', logicalBytes: SPARSE_BYTES }],
      emptyDirectories: 6,
      symlinks: true,
      hardLinkGroups: 3,
      oddNames: true,
    }),
  );
}

afterAll(async () => {
  console.log(`files-trees timings:\n  ${timings.join('\n  ')}`);
  if (workDir !== undefined) await removeTempDir(workDir);
});

/**
 * The directory source with the races of a live tree made deterministic: a file in `vanishOnOpen`
 * is deleted just before the backup opens it, and a file in `appendWhileRead` grows after its
 * first bytes were read. Records every path the backup opened.
 */
function racingSource(inner: FilesSource, races: { vanishOnOpen?: ReadonlySet<string>; appendWhileRead?: ReadonlySet<string> } = {}): FilesSource & { opened: Set<string> } {
  const opened = new Set<string>();
  return {
    kind: inner.kind,
    location: inner.location,
    opened,
    entries: (onProblem) => inner.entries(onProblem),
    restat: (entry) => inner.restat(entry),
    async open(entry) {
      opened.add(entry.path);
      if (races.vanishOnOpen?.has(entry.path) === true) await unlink(join(sourceRoot, entry.path));
      const content = await inner.open(entry);
      if (races.appendWhileRead?.has(entry.path) !== true) return content;
      let appended = false;
      const growAfterFirstBytes = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          if (appended) return callback(null, chunk);
          appended = true;
          appendContent(join(sourceRoot, entry.path), `appended/${entry.path}`, APPENDED_BYTES, false).then(() => callback(null, chunk), callback);
        },
      });
      content.once('error', (error) => growAfterFirstBytes.destroy(error));
      return content.pipe(growAfterFirstBytes);
    },
  };
}

const AGENT = { agent: { id: 'files-trees-test', version: '0' }, clock: () => new Date() };

/** takeSnapshot, its tree through the pipeline into storage, then the manifest: as the files agent commits a snapshot. */
async function backUp(store: ArtifactStore, repository: ChunkRepository, keys: KeyRing, source: FilesSource, artifactId: string, parent?: Manifest): Promise<Manifest> {
  const startedAt = new Date();
  const snapshot = takeSnapshot({ source, repository, sessionId: artifactId, ...(parent ? { parentTree: committedTree(store, parent, keys) } : {}) });
  try {
    const encoded = encodeStream(snapshot.tree, { compression: 'zstd', ...(keys.current ? { key: keys.current } : {}) });
    snapshot.tree.once('error', (error) => encoded.output.destroy(error));
    const [saved, summary, facts] = await settleFirstCause(
      [store.saveData('files', 'docs', artifactId, encoded.output as Readable), encoded.summary, snapshot.facts] as const,
      () => snapshot.tree.destroy(),
    );
    const manifest = manifestOf(
      { engine: 'files', target: 'docs', artifactId, kind: 'tree', format: TREE_FORMAT, requestId: artifactId, startedAt, source: facts, summary, dataKey: saved.key, verify: false, parentId: parent?.id, message: {} },
      AGENT,
    );
    await store.commit(manifest);
    return manifest;
  } finally {
    await snapshot.close();
  }
}

async function bytesUnder(backend: StorageBackend, prefix: string): Promise<number> {
  let bytes = 0;
  for await (const object of backend.list(prefix)) bytes += object.size;
  return bytes;
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(join(sourceRoot, path))).size;
}

const problemPaths = (facts: FilesSourceFacts, kind: string) => facts.problems.filter((p) => p.problem === kind).map((p) => p.path).sort();

interface Backend {
  readonly name: string;
  readonly smallFiles: number;
  open(): Promise<StorageBackend>;
  close?(): Promise<void>;
}

let s3: S3Endpoint | undefined;
const backends: Backend[] = [
  { name: 'filesystem storage', smallFiles: FS_SMALL_FILES, open: async () => createFsBackend({ root: join(workDir, 'storage') }) },
  {
    name: 's3rver',
    smallFiles: S3_SMALL_FILES,
    open: async () => {
      s3 = await startS3();
      return createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: 'files-trees', prefix: 'tidemark' });
    },
    close: async () => s3?.stop(),
  },
];

describe.each(backends.map((backend, index) => ({ ...backend, index })))('a real tree of $smallFiles files on $name', ({ name, index, smallFiles, open, close }) => {
  let backend: StorageBackend;
  let store: ArtifactStore;
  let repository: ChunkRepository;
  const keys = keyRingOf({ id: `files-trees-${index}`, key: randomBytes(32) });
  let first: Manifest;
  // Chosen once the tree exists.
  const vanishOnOpen = new Set<string>();
  const appendWhileRead = new Set([`live/${index}/growing-0.log`, `live/${index}/growing-1.log`]);

  beforeAll(async () => {
    await buildSourceTree(index, smallFiles);
    backend = await open();
    store = new ArtifactStore(backend);
    repository = await openChunkRepository({ backend, keyRing: keys, compression: 'zstd' });
    for (const fraction of [0.01, 0.5, 0.99]) vanishOnOpen.add(tree.files[Math.floor(fraction * smallFiles)]!);
    await mkdir(join(sourceRoot, `live/${index}`), { recursive: true });
    for (const path of appendWhileRead) await appendContent(join(sourceRoot, path), path, LIVE_FILE_BYTES, false);
  }, STEP_TIMEOUT_MS);
  afterAll(async () => {
    await backend?.close();
    await close?.();
    await removeTempDir(sourceRoot);
  });

  it(
    'backs up while files vanish and grow, restores into a new directory, and the restore is identical by an independent walk',
    async () => {
      const source = racingSource(openSource({ kind: 'directory', path: sourceRoot }), { vanishOnOpen, appendWhileRead });
      first = await timed(`${name}: first backup`, () => backUp(store, repository, keys, source, `first-${index}`));
      const firstFacts = filesFactsOf(first);

      expect(firstFacts.files).toBeGreaterThanOrEqual(smallFiles);
      expect(problemPaths(firstFacts, 'vanished')).toEqual([...vanishOnOpen].sort());
      expect(problemPaths(firstFacts, 'changed_during_backup')).toEqual([...appendWhileRead].sort());
      expect(firstFacts.changedDuringBackupCount).toBe(appendWhileRead.size);
      expect(firstFacts.symlinks).toBe(tree.symlinks.size);
      expect(firstFacts.hardLinks).toBe(tree.hardLinks.reduce((links, group) => links + group.length - 1, 0));
      const flagged: string[] = [];
      const vanished: string[] = [];
      for await (const entry of committedTree(store, first, keys)) {
        if (entry.changedDuringBackup === true) flagged.push(entry.path);
        if (entry.problem === 'vanished') vanished.push(entry.path);
      }
      expect(flagged.sort()).toEqual([...appendWhileRead].sort());
      expect(vanished.sort()).toEqual([...vanishOnOpen].sort());

      const restored = join(workDir, `restored-${index}`);
      const summary = await timed(`${name}: restore`, () => restoreToDirectory({ tree: () => committedTree(store, first, keys), repository, intoDirectory: restored }));
      expect(summary.refused).toEqual([]);
      const comparison = await timed(`${name}: compare restore`, () => compareDirectoryWithTree(restored, committedTree(store, first, keys)));
      expect(comparison.differences).toEqual([]);
      expect(comparison.ok).toBe(true);
      // compare counts hard-link entries as files too.
      expect(comparison.filesCompared).toBe(firstFacts.files - vanishOnOpen.size + firstFacts.hardLinks);

      // Holes stay holes: the 2 GiB image holds three 4 KiB islands of data.
      const image = await lstat(join(restored, tree.sparseFiles[0]!));
      expect(image.size).toBe(SPARSE_BYTES);
      expect(image.blocks * 512).toBeLessThan(16 * 1024 * 1024);
      await removeTempDir(restored);
    },
    STEP_TIMEOUT_MS,
  );

  it(
    'a second backup after 1 % of the files changed and a few grew reads only those and stores only their chunks',
    async () => {
      const present = tree.files.filter((path) => !vanishOnOpen.has(path));
      const mutation = await mutateTree(sourceRoot, { files: present, changeFraction: 0.01, grow: 3, seed: `second-${index}` });
      // The files caught growing last time are read again too: their snapshot may be torn.
      const expectedReads = new Set([...mutation.changed, ...mutation.grown, ...appendWhileRead]);
      const chunkBytesBefore = await bytesUnder(backend, 'chunks/');
      const source = racingSource(openSource({ kind: 'directory', path: sourceRoot }));
      const second = await timed(`${name}: second backup`, () => backUp(store, repository, keys, source, `second-${index}`, first));
      const secondFacts = filesFactsOf(second);

      expect([...source.opened].sort()).toEqual([...expectedReads].sort());
      expect(secondFacts.unchangedFiles).toBe(secondFacts.files - expectedReads.size);
      let readBytes = 0;
      for (const path of expectedReads) readBytes += await sizeOf(path);
      expect(secondFacts.newBytes).toBeLessThanOrEqual(readBytes);
      // What the bucket's chunk store grew by: the new chunks' blobs, the tree's changed segments, pack headers and one index file.
      const chunkGrowth = (await bytesUnder(backend, 'chunks/')) - chunkBytesBefore;
      const segments = secondFacts.tree!;
      // Each new blob also has its line in a pack header and in the index file.
      expect(chunkGrowth).toBeLessThanOrEqual(secondFacts.newStoredBytes + segments.newStoredBytes + (secondFacts.newChunks + segments.newSegments) * 256 + 256 * 1024);
      // About 1 % of the paths changed: segments of 8 paths on average, so about 8 % of them are new, not the whole tree.
      expect(segments.newSegments).toBeGreaterThan(0);
      expect(segments.newSegments).toBeLessThan(segments.segments * 0.15);
      expect(secondFacts.newStoredBytes).toBeLessThanOrEqual(readBytes * 1.05 + 64 * 1024);
      timings.push(`${name}: second backup read ${expectedReads.size} files (${(readBytes / 1024 ** 2).toFixed(1)} MiB), chunk store grew ${(chunkGrowth / 1024 ** 2).toFixed(2)} MiB (${segments.newSegments} of ${segments.segments} tree segments new)`);
    },
    STEP_TIMEOUT_MS,
  );
});
