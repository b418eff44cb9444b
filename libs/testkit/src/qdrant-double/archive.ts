// The double's snapshot file: gzip-compressed JSON lines. The first line is a header (format tag,
// kind, the collection's full config), then one line per point with its exact float32 vectors,
// payload and version, then a trailer with the count, so a truncated file is rejected. Gzip's CRC
// makes a corrupted file fail to read. Written and read as streams: memory stays flat.
import { hashingTap } from './hash-tap.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, createGzip } from 'node:zlib';
import { badRequest, QdrantHttpError } from './errors.js';
import type { CollectionConfig, StoredPoint } from './collection.js';
import type { Payload, PointId } from './types.js';

export const ARCHIVE_FORMAT = 'tidemark-qdrant-double-snapshot';
export const QDRANT_VERSION = '1.19.0';

export interface ArchiveHeader {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly format_version: 1;
  readonly qdrant_version: string;
  readonly kind: 'collection' | 'shard';
  readonly collection: string;
  /** Set for shard snapshots. */
  readonly shard_id?: number;
  readonly created_at: string;
  readonly config: CollectionConfig;
}

export interface ArchivePoint {
  readonly id: PointId;
  /** Vectors by name: base64 of the little-endian float32 values (exact and compact). */
  readonly vectors: Record<string, string>;
  readonly payload: Payload;
  readonly version: number;
}

const LINES_PER_CHUNK = 256;

async function* lines(header: ArchiveHeader, points: readonly StoredPoint[]): AsyncGenerator<string> {
  yield `${JSON.stringify(header)}\n`;
  let chunk = '';
  for (let i = 0; i < points.length; i++) {
    const p = points[i] as StoredPoint;
    const vectors: Record<string, string> = {};
    for (const [name, v] of p.vectors) vectors[name] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    chunk += `${JSON.stringify({ id: p.id, vectors, payload: p.payload, version: p.version } satisfies ArchivePoint)}\n`;
    if ((i + 1) % LINES_PER_CHUNK === 0) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}${JSON.stringify({ end: true, count: points.length })}\n`;
}

/** Streams an archive into any writable (an HTTP response, say). */
export function streamArchive(header: ArchiveHeader, points: readonly StoredPoint[], out: Writable): Promise<void> {
  return pipeline(Readable.from(lines(header, points)), createGzip({ level: 1, chunkSize: 256 * 1024 }), out);
}

/** Writes an archive to `path` (via a temp file, renamed when complete); returns its size and sha256. */
export async function writeArchive(path: string, header: ArchiveHeader, points: readonly StoredPoint[]): Promise<{ size: number; checksum: string }> {
  const temp = `${path}.partial`;
  const { tap, result } = hashingTap();
  try {
    await pipeline(Readable.from(lines(header, points)), createGzip({ level: 1, chunkSize: 256 * 1024 }), tap, createWriteStream(temp, { highWaterMark: 1024 * 1024 }));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return result();
}

/**
 * Reads an archive: `begin` sees the header and returns the callback for each point. Every
 * malformed, truncated or corrupted file is a 400, as in Qdrant.
 */
export async function readArchive(path: string, begin: (header: ArchiveHeader) => (point: ArchivePoint) => void): Promise<ArchiveHeader> {
  let header: ArchiveHeader | undefined;
  let onPoint: (point: ArchivePoint) => void = () => undefined;
  let count = 0;
  let ended = false;
  const handle = (line: string): void => {
    if (line === '') return;
    if (ended) throw new Error('data after the trailer');
    const value = JSON.parse(line) as Record<string, unknown>;
    if (header === undefined) {
      if (value['format'] !== ARCHIVE_FORMAT || value['format_version'] !== 1) throw new Error('not a snapshot of this server');
      header = value as unknown as ArchiveHeader;
      onPoint = begin(header);
      return;
    }
    if (value['end'] === true) {
      if (value['count'] !== count) throw new Error(`the trailer says ${String(value['count'])} points but ${count} were read`);
      ended = true;
      return;
    }
    count++;
    onPoint(value as unknown as ArchivePoint);
  };
  try {
    let rest = '';
    const decoder = new StringDecoder('utf8');
    const gunzip = createReadStream(path).pipe(createGunzip());
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const text = rest + decoder.write(chunk);
      const parts = text.split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) handle(line);
    }
    handle(rest + decoder.end());
    if (header === undefined || !ended) throw new Error('the file is truncated');
    return header;
  } catch (error) {
    if (error instanceof QdrantHttpError) throw error;
    throw badRequest(`Snapshot is not valid: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Decodes an archived vector (see ArchivePoint). */
export function decodeVector(base64: string): Float32Array {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length % 4 !== 0) throw new Error('a vector is not a whole number of float32 values');
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}
