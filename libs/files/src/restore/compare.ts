// compareDirectoryWithTree: the proof of a restore, so it shares nothing with the restore code.
// It walks the directory itself (readdir as bytes, siblings sorted by name bytes, depth first: the
// tree's walk order), hashes every file, and merge-joins that walk with the tree, so memory stays
// flat whatever the size (only files with several links are remembered, for hard-link identity).
// Files are hashed several at a time (HASHES_IN_FLIGHT, a small buffer each) and siblings are
// lstat'ed a few ahead, but every difference is still reported in walk order, as if one at a time.
import { createHash } from 'node:crypto';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { TreeEntry } from '../tree/entry.js';
import { bytesOf, compareTreePaths } from '../tree/paths.js';
import type { TreeComparison } from './api.js';

const MAX_DIFFERENCES = 100;
/**
 * A restore sets mtimes through a double that libuv turns into microseconds (see restore/metadata.ts):
 * rounding on both sides can land just over 1 µs away (seen on a few hundred of 20,000 files), so 2 µs is equal.
 */
const MTIME_TOLERANCE_NS = 2_000n;
const SLASH = 0x2f;
/** Files hashed at once: the walk mostly waits on the file system, one file at a time it idles. */
const HASHES_IN_FLIGHT = 16;
/** Read buffer per file being hashed (smaller for a smaller file): memory stays HASHES_IN_FLIGHT of these. */
const HASH_BUFFER_BYTES = 256 * 1024;
/** Siblings lstat'ed ahead of the one being compared. */
const LSTATS_AHEAD = 32;

type Note = readonly [path: Buffer, field: string, expected?: unknown, actual?: unknown];
/** Never rejects unawaited: a failed hash is rethrown when its turn to be reported comes. */
type PendingNote = Promise<{ readonly note?: Note; readonly error?: unknown }>;

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
  const report = (path: Buffer, field: string, expected?: unknown, actual?: unknown): void => {
    differenceCount += 1;
    if (differences.length < MAX_DIFFERENCES) differences.push({ path: path.toString('utf8'), field, ...(expected === undefined ? {} : { expected }), ...(actual === undefined ? {} : { actual }) });
  };
  /** Differences in walk order; a hash still running holds its place (and everything after it waits). */
  const queue: (Note | PendingNote)[] = [];
  let hashesInFlight = 0;
  const differ = (path: Buffer, field: string, expected?: unknown, actual?: unknown): void => {
    if (queue.length === 0) report(path, field, expected, actual);
    else queue.push([path, field, expected, actual]);
  };
  /** Reports what is ready at the head of the queue; with `until`, waits for hashes until fewer than that are in flight. */
  const drain = async (until = Infinity): Promise<void> => {
    for (;;) {
      const head = queue[0];
      if (head === undefined) return;
      if (head instanceof Promise) {
        if (hashesInFlight < until) return;
        const { note, error } = await head;
        hashesInFlight -= 1;
        void queue.shift(); // awaited just above
        if (error !== undefined) throw error;
        if (note !== undefined) report(...note);
      } else {
        void queue.shift(); // a note, not a promise
        report(...head);
      }
    }
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
          const expected = entry.sha256;
          bytesCompared += Number(stats.size);
          queue.push(
            sha256Of(Buffer.concat([rootBytes, Buffer.of(SLASH), found.path]), Number(stats.size)).then(
              (sha256) => (sha256 !== expected ? { note: [path, 'sha256', expected, sha256] as const } : {}),
              (error: unknown) => ({ error: error ?? new Error(`hashing ${path.toString('utf8')} failed`) }),
            ),
          );
          hashesInFlight += 1;
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
    await drain(HASHES_IN_FLIGHT);
    found = await nextInScope(walk, inScope);
  }
  for (; found !== undefined; found = await nextInScope(walk, inScope)) extra(found);
  await drain(0);
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
  const paths = names.map((name) => (relative === undefined ? name : Buffer.concat([relative, Buffer.of(SLASH), name])));
  const ahead: Promise<BigIntStats>[] = [];
  for (let index = 0; index < paths.length; index++) {
    while (ahead.length < LSTATS_AHEAD && index + ahead.length < paths.length) {
      const stats = lstat(Buffer.concat([root, Buffer.of(SLASH), paths[index + ahead.length] as Buffer]), { bigint: true });
      stats.catch(() => undefined); // rethrown below when its turn comes, not an unhandled rejection meanwhile
      ahead.push(stats);
    }
    const path = paths[index] as Buffer;
    const stats = await (ahead.shift() as Promise<BigIntStats>);
    yield { path, stats };
    if (stats.isDirectory() && descend(path)) yield* walkDirectory(root, descend, path);
  }
}

/** Reads to the end (not just `size` bytes: a file that grew must not match). */
async function sha256Of(path: Buffer, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(Math.min(size + 1, HASH_BUFFER_BYTES));
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

const octal = (mode: number): string => `0o${mode.toString(8).padStart(4, '0')}`;
