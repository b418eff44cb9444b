// compareDirectoryWithTree: the proof of a restore, so it shares nothing with the restore code.
// It walks the directory itself (readdir as bytes, siblings sorted by name bytes, depth first: the
// tree's walk order), hashes every file, and merge-joins that walk with the tree, so memory stays
// flat whatever the size (only files with several links are remembered, for hard-link identity).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { TreeEntry } from '../tree/entry.js';
import { bytesOf, compareTreePaths } from '../tree/paths.js';
import type { TreeComparison } from './api.js';

const MAX_DIFFERENCES = 100;
/** A restore sets mtimes through a double (see restore/metadata.ts): a microsecond is equal. */
const MTIME_TOLERANCE_NS = 1_000n;
const SLASH = 0x2f;

interface Found {
  readonly path: Buffer;
  readonly stats: BigIntStats;
}

export interface CompareOptions {
  /** Only these paths (and what is under them); directories above them are not compared. */
  readonly paths?: readonly string[];
  readonly owners?: boolean;
  readonly mtimes?: boolean;
}

/** Walks `directory` on its own (no tree code) and compares paths, types, modes, sizes, sha256, link targets (and owners, mtimes) with the tree. */
export async function compareDirectoryWithTree(directory: string, tree: AsyncIterable<TreeEntry>, options: CompareOptions = {}): Promise<TreeComparison> {
  const scope = (options.paths ?? []).map((path) => Buffer.from(path.replace(/^\/+|\/+$/g, ''), 'utf8'));
  const under = (ancestor: Buffer, path: Buffer): boolean => path.length > ancestor.length && path[ancestor.length] === SLASH && path.subarray(0, ancestor.length).equals(ancestor);
  const inScope = (path: Buffer): boolean => scope.length === 0 || scope.some((root) => root.equals(path) || under(root, path));
  const aboveScope = (path: Buffer): boolean => scope.some((root) => under(path, root));
  /** A directory a restore of chosen paths creates when the tree has no entry for it: not an extra. */
  const structural = (found: Found): boolean => found.stats.isDirectory() && scope.some((root) => root.equals(found.path) || under(found.path, root));
  const extra = (found: Found): void => {
    if (!structural(found)) differ(found.path, 'exists', false, true);
  };

  const differences: TreeComparison['differences'][number][] = [];
  let differenceCount = 0;
  let filesCompared = 0;
  let bytesCompared = 0;
  const differ = (path: Buffer, field: string, expected?: unknown, actual?: unknown): void => {
    differenceCount += 1;
    if (differences.length < MAX_DIFFERENCES) differences.push({ path: path.toString('utf8'), field, ...(expected === undefined ? {} : { expected }), ...(actual === undefined ? {} : { actual }) });
  };
  /** Inode of every compared file with more than one link, by path; and the path that showed each inode first. */
  const inodeAt = new Map<string, string>();
  const firstPathOfInode = new Map<string, string>();

  const rootBytes = Buffer.from(directory);
  const walk = walkDirectory(rootBytes, (path) => inScope(path) || aboveScope(path))[Symbol.asyncIterator]();
  let found = await nextInScope(walk, inScope);
  for await (const entry of tree) {
    const path = bytesOf(entry.path, entry.pathBase64);
    if (!inScope(path) || entry.problem !== undefined) continue;
    while (found !== undefined && compareTreePaths(found.path, path) < 0) {
      extra(found);
      found = await nextInScope(walk, inScope);
    }
    if (found === undefined || compareTreePaths(found.path, path) !== 0) {
      differ(path, 'exists', true, false);
      continue;
    }
    const { stats } = found;
    const actualType = stats.isSymbolicLink() ? 'symlink' : stats.isDirectory() ? 'dir' : stats.isFile() ? 'file' : 'other';
    const expectedType = entry.type === 'hardlink' ? 'file' : entry.type;
    if (actualType !== expectedType) {
      differ(path, 'type', expectedType, actualType);
    } else {
      if (actualType !== 'symlink' && (Number(stats.mode) & 0o7777) !== entry.mode) differ(path, 'mode', octal(entry.mode), octal(Number(stats.mode) & 0o7777));
      if (options.owners === true && (Number(stats.uid) !== entry.uid || Number(stats.gid) !== entry.gid)) differ(path, 'owner', `${entry.uid}:${entry.gid}`, `${stats.uid}:${stats.gid}`);
      if (options.mtimes === true) {
        const drift = stats.mtimeNs - BigInt(entry.mtimeNs);
        if (drift > MTIME_TOLERANCE_NS || drift < -MTIME_TOLERANCE_NS) differ(path, 'mtime', entry.mtimeNs, stats.mtimeNs.toString());
      }
      const inode = `${stats.dev}:${stats.ino}`;
      if (entry.type === 'file') {
        filesCompared += 1;
        if (Number(stats.size) !== entry.size) differ(path, 'size', entry.size, Number(stats.size));
        if (entry.sha256 !== undefined) {
          const sha256 = await sha256Of(Buffer.concat([rootBytes, Buffer.of(SLASH), found.path]));
          bytesCompared += Number(stats.size);
          if (sha256 !== entry.sha256) differ(path, 'sha256', entry.sha256, sha256);
        }
        if (stats.nlink > 1n) {
          const other = firstPathOfInode.get(inode);
          if (other !== undefined) differ(path, 'hardlink', 'a file of its own', `linked with ${JSON.stringify(other)}`);
          else firstPathOfInode.set(inode, path.toString('utf8'));
          inodeAt.set(path.toString('latin1'), inode);
        }
      } else if (entry.type === 'hardlink') {
        filesCompared += 1;
        const linkTo = bytesOf(entry.linkTo ?? '', entry.linkToBase64);
        const expectedInode = inodeAt.get(linkTo.toString('latin1'));
        // A link whose first path is outside the compared paths was restored as a file: no identity to check.
        if (expectedInode !== undefined ? expectedInode !== inode : inScope(linkTo)) differ(path, 'hardlink', `same file as ${JSON.stringify(entry.linkTo)}`, 'another file');
      } else if (entry.type === 'symlink') {
        const target = await readlink(Buffer.concat([rootBytes, Buffer.of(SLASH), found.path]), { encoding: 'buffer' });
        const expected = bytesOf(entry.linkTarget ?? '', entry.linkTargetBase64);
        if (!target.equals(expected)) differ(path, 'linkTarget', expected.toString('utf8'), target.toString('utf8'));
      }
    }
    found = await nextInScope(walk, inScope);
  }
  for (; found !== undefined; found = await nextInScope(walk, inScope)) extra(found);
  return { ok: differenceCount === 0, filesCompared, bytesCompared, differences, differenceCount };
}

async function nextInScope(walk: AsyncIterator<Found>, inScope: (path: Buffer) => boolean): Promise<Found | undefined> {
  for (;;) {
    const next = await walk.next();
    if (next.done === true) return undefined;
    if (inScope(next.value.path)) return next.value;
  }
}

/** Every entry under `root` in walk order, descending only where `descend` says. Paths are relative bytes. */
async function* walkDirectory(root: Buffer, descend: (path: Buffer) => boolean, relative?: Buffer): AsyncGenerator<Found> {
  const absolute = relative === undefined ? root : Buffer.concat([root, Buffer.of(SLASH), relative]);
  const names = (await readdir(absolute, { encoding: 'buffer' })).sort(Buffer.compare);
  for (const name of names) {
    const path = relative === undefined ? name : Buffer.concat([relative, Buffer.of(SLASH), name]);
    const stats = await lstat(Buffer.concat([root, Buffer.of(SLASH), path]), { bigint: true });
    yield { path, stats };
    if (stats.isDirectory() && descend(path)) yield* walkDirectory(root, descend, path);
  }
}

async function sha256Of(path: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

const octal = (mode: number): string => `0o${mode.toString(8).padStart(4, '0')}`;
