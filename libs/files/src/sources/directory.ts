// A local directory, walked in tree order. Names are read as bytes (readdir with encoding
// 'buffer'), so a name that is not valid UTF-8 is stored and restored exactly. Symlinks are
// recorded, never followed; one directory's names are in memory at a time per level.
import { constants, type BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import picomatch from 'picomatch';
import { TidemarkError } from '@tidemark/contracts';
import { bytesOf, textOf } from '../tree/paths.js';
import { SourceFileVanished, type FilesSource, type SourceEntry } from './source.js';

type OnProblem = Parameters<FilesSource['entries']>[0];

/** lstat calls in flight while a directory is listed: a cold tree is latency-bound, not CPU-bound. */
const STAT_BATCH = 64;
const READ_BUFFER_BYTES = 1024 * 1024;
const MIN_READ_BUFFER_BYTES = 16 * 1024;
const SLASH = Buffer.from('/');

export interface DirectoryWalkOptions {
  readonly path: string;
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
}

export function openDirectorySource(options: DirectoryWalkOptions, kind: 'directory' | 'ollama' = 'directory'): FilesSource {
  const root = resolve(options.path);
  const rootBytes = Buffer.from(root);
  const absolute = (relative: Buffer): Buffer => Buffer.concat([rootBytes, SLASH, relative]);
  const taken = selection(options.include, options.exclude);

  async function* entries(onProblem: OnProblem): AsyncGenerator<SourceEntry> {
    await checkRoot(root);
    // Directories not selected themselves are held back until something under them is emitted,
    // so include globs do not leave a trail of empty directories.
    const heldBack: SourceEntry[] = [];
    async function* walk(directory: Buffer): AsyncGenerator<SourceEntry> {
      let names: Buffer[];
      try {
        names = await readdir(directory.length === 0 ? rootBytes : absolute(directory), { encoding: 'buffer' });
      } catch (error) {
        onProblem(textOf(directory).text, problemOf(error), describe(error));
        return;
      }
      names.sort(Buffer.compare);
      for (let first = 0; first < names.length; first += STAT_BATCH) {
        const batch = names.slice(first, first + STAT_BATCH).map((name) => (directory.length === 0 ? name : Buffer.concat([directory, SLASH, name])));
        const stats = await Promise.all(batch.map((path) => lstat(absolute(path), { bigint: true }).catch((error: unknown) => error as Error)));
        for (const [index, path] of batch.entries()) {
          const stats_ = stats[index];
          const text = textOf(path);
          if (stats_ === undefined || stats_ instanceof Error) {
            onProblem(text.text, problemOf(stats_), describe(stats_));
            continue;
          }
          const isDirectory = stats_.isDirectory();
          const selected = taken(text.text, isDirectory);
          if (selected === 'excluded') continue;
          const base = { path: text.text, ...(text.base64 === undefined ? {} : { pathBase64: text.base64 }), ...ownership(stats_) };
          if (isDirectory) {
            const entry: SourceEntry = { ...base, type: 'dir', size: 0 };
            if (selected === 'taken') {
              yield* heldBack.splice(0);
              yield entry;
            } else {
              heldBack.push(entry);
            }
            yield* walk(path);
            if (heldBack.at(-1) === entry) heldBack.pop();
            continue;
          }
          if (selected !== 'taken') continue;
          if (stats_.isFile()) {
            const entry: SourceEntry = {
              ...base,
              type: 'file',
              size: Number(stats_.size),
              inode: Number(stats_.ino),
              device: Number(stats_.dev),
              ...(stats_.nlink > 1n ? { linkGroup: `${stats_.dev}:${stats_.ino}` } : {}),
            };
            yield* heldBack.splice(0);
            yield entry;
          } else if (stats_.isSymbolicLink()) {
            let target: Buffer;
            try {
              target = await readlink(absolute(path), { encoding: 'buffer' });
            } catch (error) {
              onProblem(text.text, problemOf(error), describe(error));
              continue;
            }
            const link = textOf(target);
            yield* heldBack.splice(0);
            yield { ...base, type: 'symlink', size: 0, linkTarget: link.text, ...(link.base64 === undefined ? {} : { linkTargetBase64: link.base64 }) };
          } else {
            onProblem(text.text, 'unsupported_type', `a ${specialKind(stats_)} is not backed up`);
          }
        }
      }
    }
    yield* walk(Buffer.alloc(0));
  }

  async function openFile(entry: SourceEntry): Promise<Readable> {
    // O_NOFOLLOW: a file replaced by a symlink since the walk is not followed; O_NONBLOCK: nor
    // does a file replaced by a FIFO hang the backup.
    const handle = await open(absolute(bytesOf(entry.path, entry.pathBase64)), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: unknown) => {
      throw (error as { code?: unknown }).code === 'ELOOP' ? new SourceFileVanished(`${entry.path} was replaced by a symlink`, { cause: error }) : error;
    });
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new SourceFileVanished(`${entry.path} is no longer a regular file`);
    } catch (error) {
      await handle.close();
      throw error;
    }
    // Sized to the file: a 1 MiB read buffer per small file costs more than reading it.
    return handle.createReadStream({ highWaterMark: Math.min(READ_BUFFER_BYTES, Math.max(MIN_READ_BUFFER_BYTES, entry.size + 1)) });
  }

  async function restat(entry: SourceEntry): Promise<{ size: number; mtimeNs: string } | undefined> {
    try {
      const stats = await lstat(absolute(bytesOf(entry.path, entry.pathBase64)), { bigint: true });
      return { size: Number(stats.size), mtimeNs: stats.mtimeNs.toString() };
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  return { kind, location: root, entries, open: openFile, localPath: (entry) => absolute(bytesOf(entry.path, entry.pathBase64)), restat };
}

function ownership(stats: BigIntStats): Pick<SourceEntry, 'mode' | 'uid' | 'gid' | 'mtimeNs'> {
  return { mode: Number(stats.mode & 0o7777n), uid: Number(stats.uid), gid: Number(stats.gid), mtimeNs: stats.mtimeNs.toString() };
}

async function checkRoot(root: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(root);
  } catch (error) {
    // A missing root is most often an unmounted volume: worth retrying later.
    throw new TidemarkError('SOURCE_UNAVAILABLE', `the files source ${root} cannot be read: ${describe(error)}`, { cause: error });
  }
  if (!stats.isDirectory()) throw new TidemarkError('CONFIG_INVALID', `the files source ${root} is not a directory`);
}

/**
 * 'taken' when the path is backed up, 'excluded' when neither it nor anything under it is,
 * 'passed' for a directory that is only walked through (an include may match below it).
 */
function selection(include: readonly string[] | undefined, exclude: readonly string[] | undefined): (path: string, isDirectory: boolean) => 'taken' | 'excluded' | 'passed' {
  const options = { dot: true };
  const excluded = exclude !== undefined && exclude.length > 0 ? picomatch([...exclude], options) : () => false;
  const included = include !== undefined && include.length > 0 ? picomatch([...include], options) : () => true;
  return (path, isDirectory) => {
    if (excluded(path)) return 'excluded';
    if (included(path)) return 'taken';
    return isDirectory ? 'passed' : 'excluded';
  };
}

function problemOf(error: unknown): 'vanished' | 'unreadable' {
  return (error as { code?: unknown } | undefined)?.code === 'ENOENT' ? 'vanished' : 'unreadable';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function specialKind(stats: BigIntStats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isSocket()) return 'socket';
  if (stats.isBlockDevice()) return 'block device';
  if (stats.isCharacterDevice()) return 'character device';
  return 'special file';
}
