// One backup's writes into the repository (see UploadSession in api.ts).
import { setTimeout as delay } from 'node:timers/promises';
import { TidemarkError } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';
import type { ChunkId, FileInput, PackKind, PutResult, StoredFile, UploadSession } from './api.js';
import { encodeBlob, type BlobEncoding } from './blob.js';
import { writeIndexFile, type IndexedPack } from './index-files.js';
import { packKey } from './layout.js';
import { writeSessionMarker } from './markers.js';
import { PackBuilder, type SealedPack } from './pack.js';
import { BufferPool } from './buffer-pool.js';
import { sessionKey } from './layout.js';
import type { CodecPool, FileChunking } from './workers/pool.js';

/** Tries per pack upload when the storage connection drops (STORAGE_UNAVAILABLE); waits 0.5 s, then 1 s. */
const PACK_UPLOAD_ATTEMPTS = 3;
const PACK_RETRY_DELAY_MS = 500;

/** Packs uploading at once: two keep the link busy while the next pack fills; more only costs memory. */
export const UPLOADS_IN_FLIGHT = 2;
/** The marker is rewritten at most this often, however often touch() is called. */
export const MARKER_REFRESH_MS = 60_000;
/** A pack's buffer holds its target size and this much more: the blob that fills it (a max-size chunk, encoded) and its header. */
const PACK_SLACK_BYTES = 6 * 1024 * 1024;
/** Pack buffers of every session of the process, reused (see PackBuilder): the ones filling and uploading, a few spare. */
const packBuffers = new BufferPool(1024 * 1024, 3 * 32 * 1024 * 1024);

/** Chunks of one file being encoded and packed at once (a worker holds a few more, read ahead). */
const STORES_IN_FLIGHT_PER_FILE = 4;

export interface SessionContext {
  readonly backend: StorageBackend;
  readonly encoding: BlobEncoding;
  /** The codec workers storeFile runs on, and the id of this repository's settings there. */
  readonly codec: { readonly pool: CodecPool; readonly context: number };
  readonly packBytes: number;
  readonly sessionStaleMs: number;
  now(): Date;
  /** Whether the repository holds the chunk in a pack that is not condemned. */
  usable(id: ChunkId): boolean;
  /** The session's index file `key` is written: its chunks are now the repository's. */
  indexed(key: string, packs: readonly IndexedPack[]): void;
}

export class ChunkSession implements UploadSession {
  /** Chunks put in this session (stored, or being stored): usable for dedup by this backup. */
  private readonly chunks = new Set<ChunkId>();
  /** The pack filling per kind: a tree's segments go to packs of their own, so reading a tree back reads a few packs end to end. */
  private readonly builders = new Map<PackKind, PackBuilder>();
  /** Set while a full pack waits for an upload slot: puts wait rather than grow the pack. */
  private sealing: Promise<void> | undefined;
  private readonly uploads = new Set<Promise<void>>();
  private readonly unindexed: IndexedPack[] = [];
  private failure: unknown;
  private startedAt = 0;
  private refreshedAt = 0;
  private lastRefreshAttempt = 0;
  private refreshing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly context: SessionContext, readonly id: string) {}

  /** Writes the marker before anything is deduplicated, so a collector counts this backup in. */
  async start(): Promise<void> {
    const now = this.context.now();
    this.startedAt = now.getTime();
    await writeSessionMarker(this.context.backend, this.id, now, now);
    this.refreshedAt = this.lastRefreshAttempt = now.getTime();
  }

  has(id: ChunkId): boolean {
    return this.chunks.has(id) || this.context.usable(id);
  }

  async put(id: ChunkId, plain: Uint8Array, kind: PackKind = 'data'): Promise<PutResult> {
    this.throwIfUnusable();
    if (this.has(id)) return { stored: false, storedBytes: 0 };
    this.chunks.add(id);
    try {
      await this.touch();
      const blob = encodeBlob(plain, this.context.encoding);
      await this.append(id, blob.bytes, blob.pipeline, plain.length, kind);
      return { stored: true, storedBytes: blob.bytes.length };
    } catch (error) {
      // Another put of the same chunk may have answered "already stored": the whole session is now unusable.
      this.failure ??= error;
      throw error;
    }
  }

  async storeFile(input: FileInput, onChunk?: (put: PutResult, size: number) => void, signal?: AbortSignal): Promise<StoredFile> {
    this.throwIfUnusable();
    const job = this.context.codec.pool.chunkFile(this.context.codec.context, input);
    const chunks: { id: ChunkId; size: number }[] = [];
    const storing: Promise<void>[] = [];
    const abort = (): void => job.abort();
    signal?.addEventListener('abort', abort);
    try {
      for await (const event of job) {
        if (event.t === 'done') {
          await Promise.all(storing);
          this.throwIfUnusable();
          return { chunks, sha256: event.sha256, size: event.size, ...(event.after === undefined ? {} : { after: event.after }) };
        }
        chunks.push({ id: event.id, size: event.size });
        signal?.throwIfAborted();
        this.throwIfUnusable();
        if (this.has(event.id)) {
          job.drop(event.seq);
          onChunk?.({ stored: false, storedBytes: 0 }, event.size);
          continue;
        }
        this.chunks.add(event.id);
        const stored = this.storeChunk(job, event.seq, event.id, event.size).then((put) => onChunk?.(put, event.size));
        stored.catch(() => undefined); // awaited below, in order
        storing.push(stored);
        if (storing.length >= STORES_IN_FLIGHT_PER_FILE) await storing.shift();
      }
      throw new TidemarkError('INTERNAL', 'a codec job ended without its digest');
    } catch (error) {
      job.abort();
      await Promise.allSettled(storing);
      signal?.throwIfAborted();
      throw error;
    } finally {
      signal?.removeEventListener('abort', abort);
      await job.released;
    }
  }

  /** A claimed chunk: encoded by the worker, packed here. Failing to store it fails the session (another file may count on it). */
  private async storeChunk(job: FileChunking, seq: number, id: ChunkId, rawBytes: number): Promise<PutResult> {
    try {
      await this.touch();
      const blob = await job.store(seq);
      await this.append(id, blob.bytes, blob.pipeline, rawBytes, 'data');
      return { stored: true, storedBytes: blob.bytes.length };
    } catch (error) {
      this.failure ??= error;
      throw error;
    }
  }

  async flush(): Promise<void> {
    this.throwIfUnusable();
    await this.touch();
    while (this.sealing !== undefined) await this.sealing;
    for (const kind of [...this.builders.keys()]) await this.sealAndUpload(kind);
    await Promise.all([...this.uploads]);
    this.throwIfUnusable();
    // Checked again right before the index file: once written, it makes its packs usable for
    // everyone's dedup, so a session the collector may count dead must not write it.
    await this.touch();
    if (this.unindexed.length > 0) {
      const packs = this.unindexed.splice(0);
      let key: string;
      try {
        key = await writeIndexFile(this.context.backend, packs);
      } catch (error) {
        this.unindexed.unshift(...packs);
        throw error;
      }
      this.context.indexed(key, packs);
    }
    // Uploads may have taken long: the snapshot may be committed only if the marker stayed fresh throughout.
    await this.touch();
  }

  async touch(): Promise<void> {
    this.throwIfUnusable();
    const now = this.context.now().getTime();
    this.checkFresh(now);
    if (now - this.lastRefreshAttempt < MARKER_REFRESH_MS) return;
    this.refreshing ??= (async () => {
      this.lastRefreshAttempt = now;
      try {
        await writeSessionMarker(this.context.backend, this.id, new Date(this.startedAt), new Date(now));
        this.refreshedAt = now;
      } finally {
        this.refreshing = undefined;
      }
    })();
    await this.refreshing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Let running uploads end first: a pack landing after the marker is gone would look like a crashed backup's.
    await Promise.allSettled([...this.uploads]);
    await this.context.backend.remove(sessionKey(this.id));
  }

  private async append(id: ChunkId, stored: Buffer, pipeline: PackBuilder['pipeline'], rawBytes: number, kind: PackKind): Promise<void> {
    while (this.sealing !== undefined) await this.sealing;
    const filling = this.builders.get(kind);
    if (filling !== undefined && JSON.stringify(filling.pipeline) !== JSON.stringify(pipeline)) await this.sealAndUpload(kind);
    while (this.sealing !== undefined) await this.sealing;
    let builder = this.builders.get(kind);
    if (builder === undefined) {
      // Room for a full pack, its last blob (the one that fills it) and its header, so that it is not grown.
      builder = new PackBuilder(pipeline, packBuffers, this.context.packBytes + PACK_SLACK_BYTES);
      this.builders.set(kind, builder);
    }
    builder.add(id, stored, rawBytes);
    if (builder.bytes >= this.context.packBytes) await this.sealAndUpload(kind);
  }

  /** Seals the kind's pack once an upload slot is free, and starts its upload in the background. */
  private sealAndUpload(kind: PackKind): Promise<void> {
    if (this.sealing !== undefined) return this.sealing.then(() => this.sealAndUpload(kind));
    const sealing = (async () => {
      while (this.uploads.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
      const builder = this.builders.get(kind);
      this.builders.delete(kind);
      if (builder === undefined || builder.count === 0) return;
      const upload = this.upload(builder.seal());
      this.uploads.add(upload);
      void upload.finally(() => this.uploads.delete(upload));
    })();
    this.sealing = sealing.finally(() => {
      this.sealing = undefined;
    });
    return this.sealing;
  }

  /**
   * Never rejects: a failure is kept and fails the next put or the flush. A pack is still in
   * memory and content-addressed, so a dropped connection (a keep-alive socket the server just
   * closed) is retried here, briefly, instead of failing a whole backup of many packs.
   */
  private async upload(pack: SealedPack): Promise<void> {
    try {
      for (let attempt = 1; ; attempt += 1) {
        try {
          await this.context.backend.save(packKey(pack.packId), pack.bytes, { size: pack.bytes.length });
          break;
        } catch (error) {
          const transient = error instanceof TidemarkError && error.code === 'STORAGE_UNAVAILABLE';
          if (!transient || attempt >= PACK_UPLOAD_ATTEMPTS) throw error;
          await delay(PACK_RETRY_DELAY_MS * attempt);
        }
      }
      this.unindexed.push({ packId: pack.packId, pipeline: pack.pipeline, blobs: pack.blobs });
    } catch (error) {
      this.failure ??= error;
    } finally {
      pack.release();
    }
  }

  private checkFresh(now: number): void {
    if (now - this.refreshedAt > this.context.sessionStaleMs / 2) {
      this.failure ??= new TidemarkError(
        'CHUNK_SESSION_EXPIRED',
        `chunk session ${this.id} was last refreshed ${Math.round((now - this.refreshedAt) / 1000)} s ago, more than half the ${Math.round(this.context.sessionStaleMs / 1000)} s after which the garbage collector takes it for dead: chunks it deduplicated against may be gone; back up again`,
      );
      throw this.failure;
    }
  }

  private throwIfUnusable(): void {
    if (this.closed) throw new TidemarkError('INTERNAL', `chunk session ${this.id} is closed`);
    if (this.failure !== undefined) throw this.failure;
  }
}
