import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, opendir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TidemarkError } from '@tidemark/contracts';
import type { ByteRange, ObjectInfo, SaveOptions, StorageBackend } from './backend.js';
import { checkKey, invalidKey, notFound, unavailable } from './errors.js';
import { destroyWithCause, emptyStream, toReadable } from './streams.js';

export interface FsBackendConfig {
  /** Root directory; created if missing. Temp files live in `<root>/.tmp/` and are never listed. */
  readonly root: string;
}

const TEMP_DIRECTORY = '.tmp';

const errnoOf = (error: unknown): string | undefined => (error as { code?: unknown } | null)?.code as string | undefined;
const isMissing = (error: unknown): boolean => ['ENOENT', 'ENOTDIR', 'EISDIR'].includes(errnoOf(error) ?? '');
/** System errors (disk full, permissions) are the store's; anything else came from the body and passes through. */
const isSystemError = (error: unknown): boolean => error instanceof Error && typeof (error as { syscall?: unknown }).syscall === 'string';

export async function createFsBackend(config: FsBackendConfig): Promise<StorageBackend> {
  const root = resolve(config.root);
  const tempDirectory = join(root, TEMP_DIRECTORY);
  try {
    await mkdir(tempDirectory, { recursive: true });
  } catch (error) {
    throw unavailable(`creating the storage directory ${root}`, error, false);
  }
  /** Temp files of saves still running or failed; close() removes what is left. */
  const liveTempFiles = new Set<string>();

  const pathOf = (key: string): string => {
    checkKey(key);
    if (key === TEMP_DIRECTORY || key.startsWith(`${TEMP_DIRECTORY}/`)) throw invalidKey(key);
    return join(root, ...key.split('/'));
  };

  async function save(key: string, body: Readable | Uint8Array, _options?: SaveOptions): Promise<number> {
    const target = pathOf(key);
    const temp = join(tempDirectory, `${process.pid}-${randomBytes(8).toString('hex')}`);
    liveTempFiles.add(temp);
    const source = toReadable(body);
    let written = 0;
    try {
      const count = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          callback(null, chunk);
        },
      });
      // `flush` fsyncs the file before it is closed: the rename below must never expose a file
      // whose bytes are not yet on disk.
      // Read through an iterator that leaves the body alone on failure: the body is destroyed
      // below with the classified error, so whoever produces it learns the cause, not an abort.
      await pipeline(source.iterator({ destroyOnReturn: false }), count, createWriteStream(temp, { flags: 'wx', flush: true }));
      await renameIntoPlace(temp, target);
      liveTempFiles.delete(temp);
      await syncDirectory(dirname(target));
      return written;
    } catch (error) {
      const failure = error instanceof TidemarkError || !isSystemError(error) ? error : unavailable(`saving ${JSON.stringify(key)} under ${root}`, error);
      destroyWithCause(source, failure);
      await rm(temp, { force: true }).then(() => liveTempFiles.delete(temp), () => undefined);
      throw failure;
    }
  }

  async function renameIntoPlace(temp: string, target: string): Promise<void> {
    // A concurrent remove() may prune the freshly made parent directory; make it again once.
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(target), { recursive: true });
      try {
        await rename(temp, target);
        return;
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT' || attempt > 0) throw error;
      }
    }
  }

  async function open_(key: string, range?: ByteRange): Promise<Readable> {
    const path = pathOf(key);
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'r');
      // open() succeeds on directories on Linux; only regular files are objects.
      if (!(await file.stat()).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (error) {
      await file?.close();
      if (isMissing(error)) throw notFound(key, error);
      throw unavailable(`opening ${JSON.stringify(key)}`, error);
    }
    const start = range?.offset ?? 0;
    if (range?.length === 0) {
      await file.close();
      return emptyStream();
    }
    const end = range?.length === undefined ? undefined : start + range.length - 1;
    return file.createReadStream({ highWaterMark: 1024 * 1024, start, ...(end === undefined ? {} : { end }) });
  }

  async function readInto(key: string, offset: number, target: Uint8Array): Promise<number> {
    const path = pathOf(key);
    let file: FileHandle | undefined;
    try {
      file = await open(path, 'r');
      let filled = 0;
      while (filled < target.length) {
        const { bytesRead } = await file.read(target, filled, target.length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled;
    } catch (error) {
      if (isMissing(error)) throw notFound(key, error);
      throw unavailable(`reading ${JSON.stringify(key)}`, error);
    } finally {
      await file?.close();
    }
  }

  async function stat_(key: string): Promise<ObjectInfo> {
    const path = pathOf(key);
    try {
      const info = await stat(path);
      if (!info.isFile()) throw notFound(key);
      return { key, size: info.size, modifiedAt: info.mtime };
    } catch (error) {
      if (error instanceof TidemarkError) throw error;
      if (isMissing(error)) throw notFound(key, error);
      throw unavailable(`reading the size of ${JSON.stringify(key)}`, error);
    }
  }

  async function* list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the deepest directory the prefix names in full, then filter by the rest.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    yield* walk(base, prefix);
  }

  async function* walk(directoryKey: string, prefix: string): AsyncIterable<ObjectInfo> {
    const directory = join(root, ...directoryKey.split('/').filter(Boolean));
    let entries;
    try {
      entries = await opendir(directory);
    } catch (error) {
      if (isMissing(error)) return;
      throw unavailable(`listing ${JSON.stringify(prefix)}`, error);
    }
    for await (const entry of entries) {
      const key = `${directoryKey}${entry.name}`;
      if (directoryKey === '' && entry.name === TEMP_DIRECTORY) continue;
      if (entry.isDirectory()) {
        const keyAsDirectory = `${key}/`;
        if (keyAsDirectory.startsWith(prefix) || prefix.startsWith(keyAsDirectory)) yield* walk(keyAsDirectory, prefix);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        try {
          const info = await stat(join(directory, entry.name));
          yield { key, size: info.size, modifiedAt: info.mtime };
        } catch (error) {
          if (!isMissing(error)) throw unavailable(`listing ${JSON.stringify(prefix)}`, error);
          // removed while we listed: it is simply gone
        }
      }
    }
  }

  async function remove(key: string): Promise<void> {
    const path = pathOf(key);
    try {
      await unlink(path);
    } catch (error) {
      if (isMissing(error)) return;
      throw unavailable(`removing ${JSON.stringify(key)}`, error);
    }
    await pruneEmptyDirectories(dirname(path));
  }

  /** Removes directories left empty, up to the root, so that removed artifacts leave no trace. */
  async function pruneEmptyDirectories(directory: string): Promise<void> {
    while (directory !== root && directory.startsWith(root + sep)) {
      try {
        await rmdir(directory);
      } catch {
        return; // not empty (or already gone): stop here
      }
      directory = dirname(directory);
    }
  }

  return {
    properties: { kind: 'fs', location: root },
    save,
    open: open_,
    readInto,
    stat: stat_,
    list,
    remove,
    async close(): Promise<void> {
      await Promise.all([...liveTempFiles].map((temp) => rm(temp, { force: true }).catch(() => undefined)));
      liveTempFiles.clear();
    },
  };
}

/** fsync the directory so the rename itself survives a crash. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
