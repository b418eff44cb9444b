// Packs: blobs back to back, then a JSON header that lists them, the header's length (u32 BE)
// and the magic "TMPACK01". The header makes every pack self-describing, so the index can always
// be rebuilt from the packs alone. The pack id is the sha256 of the whole pack: re-hashing a pack
// finds any flipped byte, header included.
import { createHash } from 'node:crypto';
import { TidemarkError, type PipelineFacts } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';
import type { ChunkId } from './api.js';
import { CHUNK_ID_PATTERN } from './chunk-id.js';
import { readBounded, parsePipeline } from './json.js';
import { packKey } from './layout.js';
import type { BufferPool } from './buffer-pool.js';

export const PACK_MAGIC = Buffer.from('TMPACK01', 'ascii');
export const PACK_VERSION = 1;
const TRAILER_BYTES = 4 + PACK_MAGIC.length;
/** Read with the trailer, so one ranged read usually brings the whole header too. */
const TAIL_READ_BYTES = 256 * 1024;

/** One blob in a pack: [id, offset, length, rawBytes] in index files (compact), named here. */
export interface PackBlob {
  readonly id: ChunkId;
  readonly offset: number;
  readonly length: number;
  readonly rawBytes: number;
}

export interface PackHeader {
  readonly packVersion: 1;
  /** How every blob of this pack was encoded (one compression and one key per pack). */
  readonly pipeline: PipelineFacts;
  readonly blobs: readonly PackBlob[];
}

export interface SealedPack {
  readonly packId: string;
  readonly pipeline: PipelineFacts;
  readonly blobs: readonly PackBlob[];
  /** The whole pack: blobs, header, trailer. Valid until release(). */
  readonly bytes: Buffer;
  /** The pack was written (or given up on): its buffer goes back to the pool. */
  release(): void;
}

/**
 * Collects blobs of one pipeline until sealed, copied into one buffer from `buffers` and hashed
 * as they come: a concatenation at the seal allocated a fresh 16 MiB per pack, whose page faults
 * and collection cost more than the copy.
 */
export class PackBuilder {
  private readonly blobs: PackBlob[] = [];
  private readonly hash = createHash('sha256');
  private buffer: Buffer;
  private size = 0;

  constructor(
    readonly pipeline: PipelineFacts,
    private readonly buffers: BufferPool,
    capacity: number,
  ) {
    this.buffer = buffers.take(capacity);
  }

  get bytes(): number {
    return this.size;
  }

  get count(): number {
    return this.blobs.length;
  }

  add(id: ChunkId, stored: Buffer, rawBytes: number): void {
    this.blobs.push({ id, offset: this.size, length: stored.length, rawBytes });
    this.ensureRoom(stored.length);
    this.size += stored.copy(this.buffer, this.size);
    this.hash.update(stored);
  }

  seal(): SealedPack {
    const header: PackHeader = { packVersion: PACK_VERSION, pipeline: this.pipeline, blobs: this.blobs };
    const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
    const trailer = Buffer.alloc(TRAILER_BYTES);
    trailer.writeUInt32BE(headerBytes.length, 0);
    PACK_MAGIC.copy(trailer, 4);
    for (const part of [headerBytes, trailer]) {
      this.ensureRoom(part.length);
      this.size += part.copy(this.buffer, this.size);
      this.hash.update(part);
    }
    const { buffer, buffers } = this;
    return { packId: this.hash.digest('hex'), pipeline: this.pipeline, blobs: this.blobs, bytes: buffer.subarray(0, this.size), release: () => buffers.give(buffer) };
  }

  private ensureRoom(bytes: number): void {
    if (this.size + bytes <= this.buffer.length) return;
    const larger = this.buffers.take(this.size + bytes);
    this.buffer.copy(larger, 0, 0, this.size);
    this.buffers.give(this.buffer);
    this.buffer = larger;
  }
}

/** Reads a pack's header from its end (one or two ranged reads). */
export async function readPackHeader(backend: StorageBackend, packId: string): Promise<PackHeader> {
  const key = packKey(packId);
  const { size } = await backend.stat(key);
  const corrupt = (why: string): TidemarkError =>
    new TidemarkError('INTEGRITY_FORMAT', `pack ${packId} ${why}: it is damaged; restore it from a copy of the bucket or remove it and rebuild the index`);
  if (size < TRAILER_BYTES) throw corrupt('is shorter than its trailer');
  const tailBytes = Math.min(size, TAIL_READ_BYTES);
  const tail = await readBounded(await backend.open(key, { offset: size - tailBytes, length: tailBytes }), tailBytes);
  if (tail.length !== tailBytes) throw corrupt('ended early while read');
  if (!tail.subarray(tail.length - PACK_MAGIC.length).equals(PACK_MAGIC)) throw corrupt('has no pack magic at its end');
  const headerLength = tail.readUInt32BE(tail.length - TRAILER_BYTES);
  if (headerLength > size - TRAILER_BYTES) throw corrupt('names a header longer than itself');
  let headerBytes: Buffer;
  if (headerLength <= tailBytes - TRAILER_BYTES) {
    headerBytes = tail.subarray(tail.length - TRAILER_BYTES - headerLength, tail.length - TRAILER_BYTES);
  } else {
    const offset = size - TRAILER_BYTES - headerLength;
    headerBytes = await readBounded(await backend.open(key, { offset, length: headerLength }), headerLength);
  }
  return parsePackHeader(headerBytes, size - TRAILER_BYTES - headerLength, corrupt);
}

function parsePackHeader(bytes: Buffer, blobsEnd: number, corrupt: (why: string) => TidemarkError): PackHeader {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw corrupt('has a header that is not JSON');
  }
  const header = json as { packVersion?: unknown; pipeline?: unknown; blobs?: unknown };
  if (header.packVersion !== PACK_VERSION || !Array.isArray(header.blobs)) throw corrupt('has a header of an unknown version');
  const pipeline = parsePipeline(header.pipeline);
  if (pipeline === undefined) throw corrupt('has a header without a valid pipeline');
  const blobs: PackBlob[] = [];
  for (const entry of header.blobs as unknown[]) {
    const blob = entry as Partial<PackBlob> | null;
    if (
      blob === null || typeof blob !== 'object' || typeof blob.id !== 'string' || !CHUNK_ID_PATTERN.test(blob.id) ||
      !isCount(blob.offset) || !isCount(blob.length) || !isCount(blob.rawBytes) || blob.offset + blob.length > blobsEnd
    ) {
      throw corrupt('lists a blob that is not valid');
    }
    blobs.push({ id: blob.id, offset: blob.offset, length: blob.length, rawBytes: blob.rawBytes });
  }
  return { packVersion: PACK_VERSION, pipeline, blobs };
}

export const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
