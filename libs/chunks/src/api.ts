// The content-addressed chunk repository: the API the files agent, the verifier and the storage
// service code against. Implementation lives in the sibling files.
//
// Bucket layout (all under `chunks/`, beside `artifacts/` and `wal/`):
//   chunks/packs/<packId[0..2]>/<packId>.pack   blobs (each chunk compressed, then encrypted, one by one)
//                                               followed by a header that lists them: an index can be
//                                               rebuilt from the packs alone
//   chunks/index/<indexId>.json                 immutable index files: which pack holds which chunk
//   chunks/sessions/<sessionId>.json            one per running backup (non-exclusive): the garbage
//                                               collector never deletes a pack a live session may use
//   chunks/gc/condemned-<stamp>.json            packs found unreferenced by one collection, deleted by
//                                               a later one after a grace period if still unreferenced
import type { Compression } from '@tidemark/contracts';
import type { KeyRing } from '@tidemark/pipeline';
import type { StorageBackend } from '@tidemark/storage';

/** A chunk id: 64 lowercase hex. HMAC-SHA256 under a key derived from the encryption key when encryption is on, else SHA-256. */
export type ChunkId = string;

export interface ChunkerSettings {
  readonly minBytes: number;
  readonly avgBytes: number;
  readonly maxBytes: number;
}

/** Where a chunk lives. `offset`/`length` address the stored blob inside the pack. */
export interface BlobLocation {
  readonly id: ChunkId;
  readonly packId: string;
  readonly offset: number;
  readonly length: number;
  /** Plaintext bytes. */
  readonly rawBytes: number;
}

export interface RepositoryOptions {
  readonly backend: StorageBackend;
  /** Chunks are encrypted with keyRing.current (when set) and chunk ids are keyed by it. */
  readonly keyRing: KeyRing;
  readonly compression: Compression;
  /** The compression's level (default: the pipeline's, zstd 1; see the README's repository format for 2 and 3). */
  readonly compressionLevel?: number;
  /** Target pack size in bytes (default 16 MiB). */
  readonly packBytes?: number;
  /**
   * The collector's sessionStaleMs (default 6 h): a session whose marker went unrefreshed for half
   * of it fails its flush with CHUNK_SESSION_EXPIRED (the collector may already count it dead).
   */
  readonly sessionStaleMs?: number;
  /** The clock of session markers (tests). */
  readonly now?: () => Date;
}

export interface PutResult {
  /** False when the repository (or this session) already held the chunk: nothing was stored. */
  readonly stored: boolean;
  /** Bytes the blob took once compressed and encrypted (0 when not stored). */
  readonly storedBytes: number;
}

/**
 * A file's bytes for storeFile: a local path that a codec worker opens and reads itself (a regular
 * file, never through a symlink, and lstat'ed again after reading), or a stream of its bytes (S3).
 * `sizeHint` sizes the reads.
 */
export type FileInput = ({ readonly path: Buffer } | { readonly stream: AsyncIterable<Uint8Array> }) & {
  readonly sizeHint: number;
  /**
   * Encode every chunk as soon as it is cut, instead of first asking whether the repository has it:
   * for a file the parent snapshot lacks, whose chunks are almost always new. A chunk found stored
   * after all costs one wasted encoding.
   */
  readonly eager?: boolean;
};

/** A file as storeFile chunked it: its chunks in order, its SHA-256 and size (as read). */
export interface StoredFile {
  readonly chunks: readonly { readonly id: ChunkId; readonly size: number }[];
  readonly sha256: string;
  readonly size: number;
  /** A path input's lstat right after reading: null when the file was gone, `error` when it could not be taken. */
  readonly after?: { readonly size: number; readonly mtimeNs: string } | { readonly error: string } | null;
}

/**
 * One backup's writes. Opening it writes the session marker; `put` packs chunks and uploads full
 * packs in the background (memory bounded by packBytes × uploads in flight; `put` waits when the
 * budget is used); `flush` uploads the last pack and writes this session's index file.
 */
/** What a pack holds: file contents, or a files tree's segments. */
export type PackKind = 'data' | 'tree';

export interface UploadSession {
  readonly id: string;
  /**
   * Stores `plain` under `id` unless the repository already has it in a pack that is not condemned;
   * in a pack of `kind`'s own ('tree': a files tree's segments, read back together).
   */
  put(id: ChunkId, plain: Uint8Array, kind?: PackKind): Promise<PutResult>;
  /**
   * Chunks a whole file, names each chunk and stores those the repository lacks, on the codec
   * workers (chunking, hashing, compression and encryption run off this thread). `onChunk` is told
   * of each chunk once it is stored or found already there. A failure reading the input rejects
   * with the input's own error; a failure of the repository fails the session as put's would.
   */
  storeFile(input: FileInput, onChunk?: (put: PutResult, size: number) => void, signal?: AbortSignal): Promise<StoredFile>;
  /** Whether the chunk is usable for dedup (indexed, or put in this session, and its pack not condemned). */
  has(id: ChunkId): boolean;
  /** After flush every put chunk is in an index file in the bucket. Call before committing the snapshot. */
  flush(): Promise<void>;
  /** Refreshes the session marker (call on progress; cheap when called often). */
  touch(): Promise<void>;
  /** Removes the marker: after the snapshot's manifest is committed, or after a failure. Idempotent. */
  close(): Promise<void>;
}

/**
 * A file made of one chunk (and holes, if any), written whole by the codec worker that decodes the
 * chunk: created at `temp` (O_EXCL, never through a symlink), the chunk at `offset` (nothing when
 * it is all zeros), truncated to `size` when it has holes, then owner, mode and mtime, then renamed
 * to `final`. A restore of many small files then costs the main thread no call per file.
 */
export interface WholeFileWrite {
  readonly kind: 'whole';
  readonly temp: Buffer;
  readonly final: Buffer;
  readonly offset: number;
  readonly size: number;
  readonly holes: boolean;
  readonly createMode: number;
  /** chown, before chmod (chown clears setuid and setgid bits). */
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly chmod?: number;
  readonly mtimeSeconds: number;
}

/**
 * A chunk of a file of several chunks, written by the codec worker that decodes it at `offset` of
 * the temp file the caller created (opened without following a symlink; nothing is written when
 * the chunk is all zeros: the caller truncates the file to its size). The caller finishes the file
 * once every chunk is written. Decoded plaintext then never crosses back to the main thread.
 */
export interface FilePartWrite {
  readonly kind: 'part';
  readonly temp: Buffer;
  readonly offset: number;
}

export type ChunkFileWrite = WholeFileWrite | FilePartWrite;

/**
 * A chunk read from a pack: its plaintext, or the files a worker wrote it into (readPackChunks'
 * `writes`), and whether it was all zeros (then parts were left as holes).
 */
export type PackChunk =
  | { readonly location: BlobLocation; readonly plain: Buffer; readonly written?: undefined }
  | { readonly location: BlobLocation; readonly plain?: undefined; readonly written: readonly ChunkFileWrite[]; readonly zeros: boolean };

export interface ChunkRepository {
  readonly keyed: boolean;
  readonly chunker: ChunkerSettings;
  /** The chunk id of plaintext bytes. */
  chunkId(plain: Uint8Array): ChunkId;
  /** Whether the chunk is indexed in a pack that is not condemned. */
  has(id: ChunkId): boolean;
  locate(id: ChunkId): BlobLocation | undefined;
  openSession(sessionId: string): Promise<UploadSession>;
  /** One chunk, decrypted, decompressed, and checked against its id (INTEGRITY_CHECKSUM when it does not match). */
  readChunk(id: ChunkId): Promise<Buffer>;
  /**
   * Several chunks of one pack in one ranged read (from the first to the last), yielded in offset
   * order, each checked against its id. Decoded on the codec workers a batch (about 1 MiB of
   * blobs) at a time, a few batches ahead. Memory: those batches. A chunk named in `writes` is
   * written into those files by the worker instead of being yielded as plaintext.
   */
  readPackChunks(packId: string, locations: readonly BlobLocation[], writes?: ReadonlyMap<ChunkId, readonly ChunkFileWrite[]>): AsyncIterable<PackChunk>;
  /** Reloads index files and the condemned set from the bucket (the GC and long-running readers use it). */
  refresh(): Promise<void>;
}

export interface GarbageCollectionOptions {
  /** A pack condemned at least this long ago, and still unreferenced, is deleted (default 1 h). */
  readonly graceMs?: number;
  /** A session marker not refreshed for this long belongs to a dead backup (default 6 h). */
  readonly sessionStaleMs?: number;
  readonly now?: () => Date;
  readonly dryRun?: boolean;
}

export interface GarbageCollectionReport {
  readonly referencedChunks: number;
  readonly packs: number;
  readonly packsCondemned: readonly string[];
  readonly packsDeleted: readonly string[];
  /** Condemned earlier but referenced again (a backup deduplicated against them): kept. */
  readonly packsRescued: readonly string[];
  readonly bytesDeleted: number;
  /** Bytes of unreferenced chunks in packs that still hold referenced ones (kept; not repacked). */
  readonly bytesUnreferencedInLivePacks: number;
  readonly indexFilesBefore: number;
  readonly indexFilesAfter: number;
  /** Live sessions that held deletions back. */
  readonly liveSessions: readonly string[];
}

/**
 * `referencedChunks` is called after the session markers are listed (so a backup that committed
 * and closed its session in between is seen by it): it must list every committed snapshot then.
 */
export type ReferencedChunks = () => Promise<ReadonlySet<ChunkId>>;
