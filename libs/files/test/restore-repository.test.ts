// The restore on the real chunk repository (@tidemark/chunks) over the filesystem backend, with
// encryption and compression: a round trip, and the throughput figures. The sizes are small by
// default; TIDEMARK_RESTORE_BENCH_FILES and TIDEMARK_RESTORE_BENCH_MIB scale them up for the figures.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkStream, openChunkRepository, type ChunkRepository, type UploadSession } from '@tidemark/chunks';
import { keyRingOf } from '@tidemark/pipeline';
import { createFsBackend, type StorageBackend } from '@tidemark/storage';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { compareDirectoryWithTree, compareTreePaths, restoreToDirectory, type TreeEntry } from '@tidemark/files';
import { MTIME_NS } from './tree-fixture.js';

const MiB = 1024 * 1024;
const SMALL_FILES = Number(process.env['TIDEMARK_RESTORE_BENCH_FILES'] ?? 2_000);
const BIG_MIB = Number(process.env['TIDEMARK_RESTORE_BENCH_MIB'] ?? 64);

let work: string;
let backend: StorageBackend;
let repository: ChunkRepository;
beforeAll(async () => {
  work = await makeTempDir('tidemark-restore-repo');
  backend = await createFsBackend({ root: join(work, 'bucket') });
  repository = await openChunkRepository({ backend, keyRing: keyRingOf({ id: 'k1', key: randomBytes(32) }), compression: 'zstd' });
});
afterAll(async () => {
  await backend?.close();
  await removeTempDir(work);
});

/** Stores `content` as a backup would (chunkStream, put) and returns its entry. */
async function backUp(session: UploadSession, path: string, content: Buffer): Promise<TreeEntry> {
  const chunks: { id: string; size: number }[] = [];
  async function* reads(): AsyncGenerator<Buffer> {
    for (let at = 0; at < content.length; at += MiB) yield content.subarray(at, at + MiB);
  }
  for await (const chunk of chunkStream(reads(), repository.chunker)) {
    const id = repository.chunkId(chunk);
    await session.put(id, chunk);
    chunks.push({ id, size: chunk.length });
  }
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: content.length, chunks, sha256: createHash('sha256').update(content).digest('hex') };
}

const dir = (path: string): TreeEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0 });
const inWalkOrder = (entries: TreeEntry[]): (() => AsyncIterable<TreeEntry>) => {
  const sorted = [...entries].sort((a, b) => compareTreePaths(Buffer.from(a.path), Buffer.from(b.path)));
  return async function* tree() {
    yield* sorted;
  };
};

describe('restoreToDirectory on the real chunk repository (fs backend, encrypted)', () => {
  it(`restores ${SMALL_FILES} small files and a ${BIG_MIB} MiB file, identical by an independent walk`, async () => {
    const session = await repository.openSession('restore-test');
    const entries: TreeEntry[] = [dir('small'), dir('big')];
    for (let index = 0; index < SMALL_FILES; index++) {
      if (index % 1000 === 0) entries.push(dir(`small/${index / 1000}`));
      entries.push(await backUp(session, `small/${Math.floor(index / 1000)}/${index}.txt`, randomBytes(200 + (index % 3000))));
    }
    const big = randomBytes(BIG_MIB * MiB);
    entries.push(await backUp(session, 'big/file.bin', big));
    entries.push(await backUp(session, 'big/holes.img', Buffer.concat([Buffer.alloc(8 * MiB), Buffer.from('middle'), Buffer.alloc(8 * MiB)])));
    await session.flush();
    await session.close();
    await repository.refresh();
    const tree = inWalkOrder(entries);
    const smallTree = inWalkOrder(entries.filter((entry) => entry.path.startsWith('small')));
    const bigTree = inWalkOrder(entries.filter((entry) => entry.path === 'big/file.bin' || entry.path === 'big'));

    let started = performance.now();
    const small = await restoreToDirectory({ tree: smallTree, repository, intoDirectory: join(work, 'small') });
    const smallSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    await restoreToDirectory({ tree: bigTree, repository, intoDirectory: join(work, 'big') });
    const bigSeconds = (performance.now() - started) / 1000;
    console.log(`restore: ${small.files} small files in ${smallSeconds.toFixed(2)} s = ${Math.round(small.files / smallSeconds)} files/s; ${BIG_MIB} MiB file in ${bigSeconds.toFixed(2)} s = ${Math.round(BIG_MIB / bigSeconds)} MiB/s`);

    const whole = join(work, 'whole');
    await restoreToDirectory({ tree, repository, intoDirectory: whole });
    const comparison = await compareDirectoryWithTree(whole, tree(), { mtimes: true });
    expect(comparison.differences).toEqual([]);
    expect(comparison.filesCompared).toBe(SMALL_FILES + 2);
  }, 120_000 + SMALL_FILES * 20 + BIG_MIB * 500);

  it('the codec workers write files of one chunk whole and the chunks of larger ones in place: modes, owners, mtimes, holes, zeros, a shared chunk; a failed restore leaves no temp file', async () => {
    const session = await repository.openSession('whole-files');
    const shared = randomBytes(5000);
    const withMode = async (path: string, content: Buffer, mode: number, owner = 0): Promise<TreeEntry> => ({ ...(await backUp(session, path, content)), mode, uid: owner, gid: owner });
    const entries: TreeEntry[] = [
      dir('w'),
      await withMode('w/setuid', randomBytes(300), 0o4755),
      await withMode('w/group-writable', randomBytes(301), 0o664),
      await withMode('w/private', randomBytes(302), 0o600, 4242),
      await backUp(session, 'w/empty', Buffer.alloc(0)),
      await backUp(session, 'w/zeros', Buffer.alloc(70_000)),
      await backUp(session, 'w/zeros-then-text', Buffer.concat([Buffer.alloc(4 * MiB), Buffer.from('after the hole')])),
      await backUp(session, 'w/shared-a', shared),
      await backUp(session, 'w/shared-b', shared),
      // Several chunks, written in place by the workers, finished (owner, mode, mtime) by the main thread.
      await withMode('w/parts', randomBytes(6 * MiB), 0o640, 4242),
      // A 4 MiB chunk of zeros (known without reading) and a 1 MiB one only decoding shows is zeros: both holes.
      await backUp(session, 'w/zeros-in-parts', Buffer.alloc(5 * MiB)),
    ];
    await session.flush();
    await session.close();
    const tree = inWalkOrder(entries);
    const into = join(work, 'whole-files');
    await restoreToDirectory({ tree, repository, intoDirectory: into, owners: true });
    const comparison = await compareDirectoryWithTree(into, tree(), { mtimes: true, owners: true });
    expect(comparison.differences).toEqual([]);
    expect(comparison.filesCompared).toBe(10);
    expect((await stat(join(into, 'w/zeros-then-text'))).blocks * 512).toBeLessThan(MiB);
    expect((await stat(join(into, 'w/zeros-in-parts'))).blocks * 512).toBeLessThan(MiB);

    // A worker's write that fails (a name too long for the filesystem: its temp name is short, the
    // rename fails) fails the restore, and no temp file is left behind.
    const broken = [...entries, { ...entries[2]!, path: `w/${'n'.repeat(300)}` }];
    const failed = join(work, 'whole-files-failed');
    await expect(restoreToDirectory({ tree: inWalkOrder(broken), repository, intoDirectory: failed })).rejects.toThrow(/ENAMETOOLONG/);
    const left = await readdir(failed, { recursive: true }).catch(() => []);
    expect(left.filter((name) => String(name).includes('.tidemark-'))).toEqual([]);
  });
});
