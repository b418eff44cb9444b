// Messages between the repository (main thread) and its codec workers (worker.ts). Bytes travel as
// transferred ArrayBuffers wherever the buffer owns its whole ArrayBuffer, copied otherwise.
import type { Compression, PipelineFacts } from '@tidemark/contracts';
import type { ChunkFileWrite, ChunkerSettings, StoredFile } from '../api.js';
import { ownsWholeBuffer } from '../buffer-pool.js';

export interface WireKey {
  readonly id: string;
  readonly key: Uint8Array;
}

/** What one repository encodes and decodes with: registered once per worker, named by `context` in jobs. */
export interface CodecContext {
  readonly context: number;
  readonly chunker: ChunkerSettings;
  readonly compression: Compression;
  readonly compressionLevel: number | undefined;
  /** Every key of the ring (decode may meet old ones); `currentKeyId` encrypts and keys chunk ids. */
  /** Encrypts the chunks and keys their ids; none without encryption. */
  readonly key: WireKey | undefined;
}

/** An error crossing the thread boundary: a TidemarkError keeps its code, an I/O error its errno code. */
export interface WireError {
  readonly message: string;
  readonly tidemarkCode?: string;
  readonly retryable?: boolean;
  readonly errno?: string;
}

export type ToWorker =
  | ({ readonly t: 'context' } & CodecContext)
  /** A file to chunk: opened by the worker at `path`, or fed with `data` messages. `eager`: encode every chunk at once. */
  | { readonly t: 'file'; readonly job: number; readonly context: number; readonly path?: Uint8Array; readonly sizeHint: number; readonly eager: boolean }
  | { readonly t: 'data'; readonly job: number; readonly bytes: Uint8Array }
  | { readonly t: 'end'; readonly job: number }
  /** The decision on chunk `seq` of a job: encode it and send the blob back, or drop it (the repository has it). A drop acknowledges an eager chunk. */
  | { readonly t: 'store'; readonly job: number; readonly seq: number }
  | { readonly t: 'drop'; readonly job: number; readonly seq: number }
  | { readonly t: 'abort'; readonly job: number }
  /**
   * Stored blobs of one pack to decode and check against their ids, with the key the pack names
   * (none when unencrypted): one buffer and one message for many small blobs.
   */
  | { readonly t: 'decode'; readonly job: number; readonly stored: Uint8Array; readonly blobs: readonly DecodeEntry[]; readonly pipeline: PipelineFacts; readonly key?: WireKey };

/** A blob inside a decode message's buffer; with `files`, written into them instead of sent back. */
export interface DecodeEntry {
  readonly id: string;
  readonly offset: number;
  readonly length: number;
  readonly files?: readonly ChunkFileWrite[];
}

export type FromWorker =
  /** Chunk `seq` of the job was cut and named: encoded already (eager) or held until told to store or drop it. */
  | { readonly t: 'chunk'; readonly job: number; readonly seq: number; readonly id: string; readonly size: number; readonly blob?: Uint8Array; readonly pipeline?: PipelineFacts }
  | { readonly t: 'blob'; readonly job: number; readonly seq: number; readonly bytes: Uint8Array; readonly pipeline: PipelineFacts }
  | { readonly t: 'blobFailed'; readonly job: number; readonly seq: number; readonly error: WireError }
  /** The file ended: every chunk was announced. Held chunks are still stored or dropped on request. */
  | { readonly t: 'done'; readonly job: number; readonly sha256: string; readonly size: number; readonly after?: StoredFile['after'] }
  /**
   * The plaintexts one after the other in `plain`, `lengths` long (0 for blobs written into files),
   * the blobs written into files that were all zeros (by index), and the decode message's buffer handed back for reuse (unless `plain` is a view of it).
   */
  | { readonly t: 'decoded'; readonly job: number; readonly plain: Uint8Array; readonly lengths: readonly number[]; readonly zeroWritten: readonly number[]; readonly stored?: Uint8Array }
  /** A file could not be read (or was aborted), or a blob not decoded. Held chunks are still stored or dropped on request. */
  | { readonly t: 'failed'; readonly job: number; readonly error: WireError };

/**
 * `bytes` as a view that owns its whole ArrayBuffer, so it can be transferred: itself when it
 * does, a copy otherwise. Never an empty buffer as it is: an empty one may be shared, and
 * transferring detaches it for everyone.
 */
export function transferable(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength > 0 && ownsWholeBuffer(bytes) ? bytes : new Uint8Array(bytes);
}
