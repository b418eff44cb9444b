// Snapshot files on disk, laid out as Qdrant does: <root>/<collection>/<name>.snapshot for
// collection snapshots and <root>/<collection>/shards/<shard>/<name>.snapshot for shard snapshots,
// each with a `<name>.checksum` file holding its sha256. Incoming snapshots (uploads and
// downloads from a URL) are streamed to <root>/.incoming and hashed on the way.
import { hashingTap } from './hash-tap.js';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { badRequest, notFound } from './errors.js';
import type { Schemas } from './types.js';

export type SnapshotDescription = Schemas['SnapshotDescription'];

/** A fixed peer id, as a single-node Qdrant puts in its snapshot names. */
export const PEER_ID = 4242424242424242;

const pad = (n: number) => String(n).padStart(2, '0');
const stamp = (d: Date) =>
  `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}-${pad(d.getUTCHours())}-${pad(d.getUTCMinutes())}-${pad(d.getUTCSeconds())}`;

export interface Incoming {
  readonly path: string;
  readonly size: number;
  readonly checksum: string;
}

export class SnapshotFiles {
  constructor(readonly root: string) {}

  dir(collection: string, shard?: number): string {
    return shard === undefined ? join(this.root, collection) : join(this.root, collection, 'shards', String(shard));
  }

  /** A fresh name such as `docs-4242424242424242-2025-01-01-12-00-00.snapshot`, unique in its directory. */
  async newName(collection: string, shard?: number): Promise<string> {
    const dir = this.dir(collection, shard);
    await mkdir(dir, { recursive: true });
    const prefix = shard === undefined ? `${collection}-${PEER_ID}` : `${collection}-shard-${shard}-${PEER_ID}`;
    const taken = new Set(await readdir(dir));
    for (let t = Date.now(); ; t += 1000) {
      const name = `${prefix}-${stamp(new Date(t))}.snapshot`;
      if (!taken.has(name) && !taken.has(`${name}.partial`)) {
        // Reserve the name so a concurrent create picks another one.
        await writeFile(join(dir, `${name}.partial`), '');
        return name;
      }
    }
  }

  /** The file of an existing snapshot, or a 404. */
  async path(collection: string, name: string, shard?: number): Promise<string> {
    if (!name.endsWith('.snapshot') || name.includes('/') || name.includes('\\') || name.startsWith('.')) {
      throw notFound(`Snapshot ${name} not found`);
    }
    const path = join(this.dir(collection, shard), name);
    try {
      if (!(await stat(path)).isFile()) throw new Error('not a file');
    } catch {
      throw notFound(`Snapshot ${name} not found`);
    }
    return path;
  }

  async saveChecksum(collection: string, name: string, checksum: string, shard?: number): Promise<void> {
    await writeFile(join(this.dir(collection, shard), `${name}.checksum`), checksum);
  }

  async list(collection: string, shard?: number): Promise<SnapshotDescription[]> {
    let entries: string[];
    try {
      entries = await readdir(this.dir(collection, shard));
    } catch {
      return [];
    }
    const out: SnapshotDescription[] = [];
    for (const name of entries.filter((e) => e.endsWith('.snapshot')).sort()) {
      const path = join(this.dir(collection, shard), name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile()) continue;
      const checksum = await readFile(`${path}.checksum`, 'utf8').catch(() => null);
      out.push({ name, creation_time: info.mtime.toISOString().slice(0, 19), size: info.size, checksum });
    }
    return out;
  }

  async delete(collection: string, name: string, shard?: number): Promise<void> {
    const path = await this.path(collection, name, shard);
    await rm(path, { force: true });
    await rm(`${path}.checksum`, { force: true });
  }

  /**
   * Streams `source` to a temp file, hashing it; checks the sha256 when one is given (400 on
   * mismatch). `source` is a stream, or a function that writes the bytes (a multipart field) itself.
   */
  async ingest(source: Readable | AsyncIterable<Buffer> | ((out: Writable) => Promise<void>), expected: string | null | undefined): Promise<Incoming> {
    const dir = join(this.root, '.incoming');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${randomBytes(8).toString('hex')}.snapshot`);
    const { tap, result } = hashingTap();
    const file = createWriteStream(path);
    try {
      if (typeof source === 'function') {
        const write = source;
        // The caller extracts the bytes (a multipart field) and writes them into `tap`.
        const done = pipeline(tap, file);
        try {
          await write(tap);
        } catch (error) {
          tap.destroy();
          await done.catch(() => undefined);
          throw error;
        }
        await done;
      } else {
        await pipeline(source, tap, file);
      }
    } catch (error) {
      file.destroy();
      await rm(path, { force: true });
      throw error;
    }
    const { size, checksum } = result();
    if (expected !== undefined && expected !== null && expected.toLowerCase() !== checksum) {
      await rm(path, { force: true });
      throw badRequest(`Snapshot checksum mismatch: expected ${expected}, got ${checksum}`);
    }
    return { path, size, checksum };
  }
}

/** The sha256 of a file, streamed. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}
