// The repository as a backup, a restore or the verifier sees it: the index and the condemned set
// in memory, sessions to write, chunks to read.
import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';
import type { BlobLocation, ChunkFileWrite, ChunkId, ChunkRepository, PackChunk, RepositoryOptions, UploadSession } from './api.js';
import { chunkIdFunction, keyOfPipeline } from './chunk-id.js';
import { ChunkIndex } from './chunk-index.js';
import { DEFAULT_CHUNKER } from './chunker.js';
import { readIndexFile, type IndexedPack } from './index-files.js';
import { listKeys, readBounded } from './json.js';
import { INDEX_PREFIX, checkSessionId, isIndexKey, packKey } from './layout.js';
import { loadCondemned, type CondemnedSet } from './markers.js';
import { ChunkSession } from './session.js';
import { BufferPool } from './buffer-pool.js';
import { sharedCodecPool, type DecodedBatch } from './workers/pool.js';
import type { DecodeEntry } from './workers/protocol.js';

export const DEFAULT_PACK_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SESSION_STALE_MS = 6 * 60 * 60 * 1000;
/** A stored blob is at most a max-size chunk plus what compression and encryption add to it. */
const MAX_BLOB_BYTES = 2 * DEFAULT_CHUNKER.maxBytes + 1024 * 1024;
/** Blobs decoded in one message to a codec worker: many small files' blobs, or one large one. */
const DECODE_BATCH_BYTES = 1024 * 1024;
const DECODE_BATCH_BLOBS = 256;
/** Batches of one pack read being decoded at once (the workers are shared by every pack read). */
const BATCHES_IN_FLIGHT = 3;
/** Unneeded bytes between a batch's blobs that one read still spans (a seek costs more than reading them). */
const GAP_READ_BYTES = 256 * 1024;

export async function openChunkRepository(options: RepositoryOptions): Promise<ChunkRepository> {
  const repository = new Repository(options);
  await repository.refresh();
  return repository;
}

class Repository implements ChunkRepository {
  readonly keyed: boolean;
  readonly chunker = DEFAULT_CHUNKER;
  readonly chunkId: (plain: Uint8Array) => ChunkId;
  private index = new ChunkIndex();
  private loadedIndexFiles = new Set<string>();
  private condemned: CondemnedSet = new Map();
  private refreshesStarted = 0;
  private refreshApplied = 0;
  private readonly now: () => Date;
  private readonly codec = sharedCodecPool();
  /** Batch buffers, back from the workers once decoded (see BufferPool). */
  private readonly batchBuffers = new BufferPool(DECODE_BATCH_BYTES, 32 * 1024 * 1024);

  constructor(private readonly options: RepositoryOptions) {
    this.keyed = options.keyRing.current !== undefined;
    this.chunkId = chunkIdFunction(options.keyRing.current);
    this.now = options.now ?? (() => new Date());
  }

  has(id: ChunkId): boolean {
    return this.index.has(id, this.usablePack);
  }

  locate(id: ChunkId): BlobLocation | undefined {
    return this.index.locate(id, this.usablePack);
  }

  async openSession(sessionId: string): Promise<UploadSession> {
    checkSessionId(sessionId);
    const { backend, keyRing, compression, compressionLevel } = this.options;
    const session = new ChunkSession(
      {
        backend,
        encoding: { compression, compressionLevel, key: keyRing.current },
        codec: { pool: this.codec, context: this.codec.context({ chunker: this.chunker, compression, compressionLevel, key: keyRing.current }) },
        packBytes: this.options.packBytes ?? DEFAULT_PACK_BYTES,
        sessionStaleMs: this.options.sessionStaleMs ?? DEFAULT_SESSION_STALE_MS,
        now: this.now,
        usable: (id) => this.has(id),
        indexed: (key, packs) => this.addIndexFile(key, packs),
      },
      sessionId,
    );
    await session.start();
    // Only now, with the marker written, may the session trust the condemned set: a collection that
    // condemns a pack after this point counts the session in before it deletes anything.
    await this.refresh();
    return session;
  }

  async readChunk(id: ChunkId): Promise<Buffer> {
    const location = this.index.locate(id, this.usablePack);
    if (location === undefined) throw missingChunk(id);
    const pipeline = this.pipelineOf(location.packId);
    const key = keyOfPipeline(pipeline, this.options.keyRing);
    const stored = await readBounded(await this.options.backend.open(packKey(location.packId), { offset: location.offset, length: location.length }), location.length, `chunk ${id}`);
    if (stored.length !== location.length) throw truncatedBlob(location);
    // A copy to hand over: what the backend's stream gave may still be its own (a memory backend's object).
    const {
      plains: [plain],
    } = await this.codec.decode(Buffer.from(new Uint8Array(stored).buffer), [{ id, offset: 0, length: stored.length }], pipeline, key);
    return plain!;
  }

  async *readPackChunks(packId: string, locations: readonly BlobLocation[], writes?: ReadonlyMap<ChunkId, readonly ChunkFileWrite[]>): AsyncIterable<PackChunk> {
    if (locations.length === 0) return;
    const pipeline = this.pipelineOf(packId);
    const key = keyOfPipeline(pipeline, this.options.keyRing);
    const sorted = [...locations].sort((a, b) => a.offset - b.offset);
    for (const location of sorted) {
      if (location.packId !== packId) throw new RangeError(`chunk ${location.id} is in pack ${location.packId}, not in ${packId}`);
      if (location.length > MAX_BLOB_BYTES) throw truncatedBlob(location);
    }
    const { backend } = this.options;
    const read = backend.readInto === undefined ? await this.streamedReads(packId, sorted) : directReads(backend.readInto.bind(backend), packKey(packId));
    // Batches decode on a codec worker (one per pack: see CodecPool.decoder) while the next ones are read; yielded in offset order.
    const decoder = this.codec.decoder();
    const decoding: DecodingBatch[] = [];
    try {
      for (const batch of decodeBatches(sorted)) {
        const { stored, offsets } = await read.batch(batch, this.batchBuffers);
        const entries: DecodeEntry[] = batch.blobs.map((blob, i) => {
          const files = writes?.get(blob.id);
          return { id: blob.id, offset: offsets[i]!, length: blob.length, ...(files === undefined ? {} : { files }) };
        });
        const plains = decoder.decode(stored, entries, pipeline, key, (returned) => this.batchBuffers.give(returned));
        plains.catch(() => undefined); // awaited in order below
        decoding.push({ batch, plains });
        while (decoding.length >= BATCHES_IN_FLIGHT) yield* decoded(decoding.shift()!, writes);
      }
      for (let next = decoding.shift(); next !== undefined; next = decoding.shift()) yield* decoded(next, writes);
    } finally {
      read.close();
      // A reader that stops early (a failed restore) must not return while workers still write its
      // files: the rollback that follows would race them.
      await Promise.allSettled(decoding.map((batch) => batch.plains));
    }
  }

  /** One ranged stream of the pack, from its first to its last blob, read in order (backends without readInto: S3). */
  private async streamedReads(packId: string, sorted: readonly BlobLocation[]): Promise<BatchReads> {
    const first = sorted[0]!;
    const end = Math.max(...sorted.map((location) => location.offset + location.length));
    const reader = new RangeReader(await this.options.backend.open(packKey(packId), { offset: first.offset, length: end - first.offset }), first.offset);
    return {
      async batch(batch, buffers) {
        const stored = buffers.take(batch.bytes);
        for (const [i, blob] of batch.blobs.entries()) {
          if (!(await reader.readInto(blob.offset, blob.length, stored, batch.at[i]!))) throw truncatedBlob(blob);
        }
        return { stored, offsets: batch.at };
      },
      close: () => reader.close(),
    };
  }

  async refresh(): Promise<void> {
    const { backend } = this.options;
    const ticket = ++this.refreshesStarted;
    // The condemned set before the index: a pack deleted by a collection is condemned in every set
    // written from before it was taken out of the index until after it is gone, so an index read
    // later than the set can only lack it, never offer it for dedup.
    const { packs: condemned } = await loadCondemned(backend);
    const keys = (await listKeys(backend, INDEX_PREFIX)).filter(isIndexKey);
    const present = new Set(keys);
    // A file gone means a collection rewrote the index (and may have deleted packs): start over,
    // so nothing deleted stays usable for dedup.
    const rewritten = [...this.loadedIndexFiles].some((key) => !present.has(key));
    const index = rewritten ? new ChunkIndex() : this.index;
    const loaded = rewritten ? new Set<string>() : new Set(this.loadedIndexFiles);
    for (const key of keys) {
      if (loaded.has(key)) continue;
      for (const pack of await readIndexFile(backend, key)) index.add(pack);
      loaded.add(key);
    }
    // Refreshes overlap when sessions open at once: an older view must never replace a newer one.
    if (ticket < this.refreshApplied) return;
    this.refreshApplied = ticket;
    // Files this process wrote meanwhile went into the same index object: keep them known.
    if (index === this.index) for (const key of this.loadedIndexFiles) loaded.add(key);
    this.index = index;
    this.loadedIndexFiles = loaded;
    this.condemned = condemned;
  }

  /**
   * A file this process wrote joins the view as if loaded from the bucket: when a collection
   * replaces it, the next refresh must notice and reload, or its packs would outlive their deletion.
   */
  private addIndexFile(key: string, packs: readonly IndexedPack[]): void {
    for (const pack of packs) this.index.add(pack);
    this.loadedIndexFiles.add(key);
  }

  private readonly usablePack = (packId: string): boolean => !this.condemned.has(packId);

  private pipelineOf(packId: string) {
    const pipeline = this.index.pipelineOf(packId);
    if (pipeline === undefined) throw new TidemarkError('STORAGE_NOT_FOUND', `pack ${packId} is in no index file: refresh the repository, or rebuild the index if the pack exists`);
    return pipeline;
  }
}

function missingChunk(id: ChunkId): TidemarkError {
  return new TidemarkError('STORAGE_NOT_FOUND', `chunk ${id} is in no index file: the snapshot references a chunk the repository lost; rebuild the index, then verify`);
}

function truncatedBlob(location: BlobLocation): TidemarkError {
  return new TidemarkError('INTEGRITY_TRUNCATED', `pack ${location.packId} ends before chunk ${location.id} (${location.length} bytes at ${location.offset}); the pack is damaged`);
}

interface DecodeBatch {
  /** Distinct blobs, in offset order, and where each goes in the batch's buffer. */
  readonly blobs: BlobLocation[];
  readonly at: number[];
  bytes: number;
  /** Every location asked for (a blob two files share is asked for twice), and its blob's index. */
  readonly requested: BlobLocation[];
  readonly blobOf: number[];
}

/** Sorted locations in batches of about DECODE_BATCH_BYTES; the same blob asked for twice is decoded once. */
function* decodeBatches(sorted: readonly BlobLocation[]): Generator<DecodeBatch> {
  let batch: DecodeBatch | undefined;
  for (const location of sorted) {
    const last = batch?.blobs[batch.blobs.length - 1];
    if (batch !== undefined && last !== undefined && last.offset === location.offset && last.id === location.id) {
      batch.requested.push(location);
      batch.blobOf.push(batch.blobs.length - 1);
      continue;
    }
    if (batch !== undefined && (batch.bytes + location.length > DECODE_BATCH_BYTES || batch.blobs.length >= DECODE_BATCH_BLOBS)) {
      yield batch;
      batch = undefined;
    }
    batch ??= { blobs: [], at: [], bytes: 0, requested: [], blobOf: [] };
    batch.requested.push(location);
    batch.blobOf.push(batch.blobs.length);
    batch.blobs.push(location);
    batch.at.push(batch.bytes);
    batch.bytes += location.length;
  }
  if (batch !== undefined) yield batch;
}

/** How a pack's batches are read: into a buffer of the pool, each blob at its offset there. */
interface BatchReads {
  batch(batch: DecodeBatch, buffers: BufferPool): Promise<{ stored: Buffer; offsets: readonly number[] }>;
  close(): void;
}

/**
 * Positional reads straight into the batch's buffer: the span from its first blob to its last in
 * one read when little between them is unneeded (a whole restore), else one read per blob.
 */
function directReads(readInto: NonNullable<StorageBackend['readInto']>, key: string): BatchReads {
  const readFully = async (offset: number, target: Buffer, blob: BlobLocation): Promise<void> => {
    if ((await readInto(key, offset, target)) !== target.length) throw truncatedBlob(blob);
  };
  return {
    async batch(batch, buffers) {
      const first = batch.blobs[0]!;
      const last = batch.blobs[batch.blobs.length - 1]!;
      const span = last.offset + last.length - first.offset;
      if (span <= batch.bytes + GAP_READ_BYTES) {
        const stored = buffers.take(span);
        await readFully(first.offset, stored.subarray(0, span), last);
        return { stored, offsets: batch.blobs.map((blob) => blob.offset - first.offset) };
      }
      const stored = buffers.take(batch.bytes);
      await Promise.all(batch.blobs.map((blob, i) => readFully(blob.offset, stored.subarray(batch.at[i]!, batch.at[i]! + blob.length), blob)));
      return { stored, offsets: batch.at };
    },
    close: () => undefined,
  };
}

interface DecodingBatch {
  readonly batch: DecodeBatch;
  readonly plains: Promise<DecodedBatch>;
}

async function* decoded({ batch, plains: decoding }: DecodingBatch, writes: ReadonlyMap<ChunkId, readonly ChunkFileWrite[]> | undefined): AsyncGenerator<PackChunk> {
  const { plains, zeroWritten } = await decoding;
  const reported = new Set<ChunkId>();
  for (const [i, location] of batch.requested.entries()) {
    const written = writes?.get(location.id);
    const blob = batch.blobOf[i]!;
    if (written === undefined) {
      yield { location, plain: plains[blob]! };
    } else {
      // Its files were written once: a second location of the same chunk reports none.
      yield { location, written: reported.has(location.id) ? [] : written, zeros: zeroWritten.has(blob) };
      reported.add(location.id);
    }
  }
}

/** Sequential reads of blobs out of one ranged stream of a pack, skipping the gaps between them. */
class RangeReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly stream: Readable, private position: number) {
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** `length` bytes at `offset` (not before the current position) into `target` at `at`; false when the stream ends first. */
  async readInto(offset: number, length: number, target: Buffer, at: number): Promise<boolean> {
    let skip = offset - this.position;
    if (skip < 0) throw new RangeError('pack reads go forward only');
    while (this.pendingBytes < skip + length) {
      const next = await this.iterator.next();
      if (next.done === true) return false;
      this.pending.push(next.value);
      this.pendingBytes += next.value.length;
      // Drop whole pieces that lie in the gap, so a skipped region never piles up.
      while (skip > 0 && this.pending.length > 0 && this.pending[0]!.length <= skip) {
        const dropped = this.pending.shift()!;
        skip -= dropped.length;
        this.pendingBytes -= dropped.length;
        this.position += dropped.length;
      }
    }
    // One copy, into the batch transferred to a codec worker as it is.
    for (let filled = 0; filled < length; ) {
      const piece = this.pending[0]!;
      if (skip >= piece.length) {
        skip -= piece.length;
        this.pendingBytes -= piece.length;
        this.pending.shift();
        continue;
      }
      const copied = piece.copy(target, at + filled, skip, Math.min(piece.length, skip + length - filled));
      filled += copied;
      const used = skip + copied;
      if (used === piece.length) this.pending.shift();
      else this.pending[0] = piece.subarray(used);
      this.pendingBytes -= used;
      skip = 0;
    }
    this.position = offset + length;
    return true;
  }

  close(): void {
    this.stream.destroy();
  }
}
