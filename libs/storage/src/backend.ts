import type { Readable } from 'node:stream';

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  readonly modifiedAt: Date;
}

export interface SaveOptions {
  /** Total size when known. The S3 backend uses it to size multipart parts (it buffers one part). */
  readonly size?: number;
  readonly contentType?: string;
}

export interface ByteRange {
  readonly offset: number;
  /** Bytes to read; to the end when omitted. */
  readonly length?: number;
}

export interface BackendProperties {
  /** 'fs' or 's3'. */
  readonly kind: string;
  /** Human location for logs, without credentials: "/var/lib/tidemark" or "s3://bucket/prefix". */
  readonly location: string;
}

/**
 * The storage port (after restic's Backend). Keys are '/'-separated relative paths.
 * Errors are TidemarkError: STORAGE_NOT_FOUND (not retryable) or STORAGE_UNAVAILABLE (retryable).
 */
export interface StorageBackend {
  readonly properties: BackendProperties;
  /**
   * Atomic save: readers see the old object or the complete new one, never a part. A failed or
   * interrupted save leaves no visible object (fs: temp file + rename; s3: multipart upload).
   * Returns the number of bytes written. A Uint8Array body is the caller's again once the save
   * settles (it may be reused for the next object): a backend that keeps the bytes copies them.
   */
  save(key: string, body: Readable | Uint8Array, options?: SaveOptions): Promise<number>;
  /** Opens an object for streaming, optionally a byte range. */
  open(key: string, range?: ByteRange): Promise<Readable>;
  /**
   * Reads up to `target.length` bytes at `offset` into `target`; returns how many (fewer only at
   * the object's end). Offered where objects sit on a local disk: the bytes land where they are
   * needed, where a stream allocates a buffer per piece (a restore's reads of packs).
   */
  readInto?(key: string, offset: number, target: Uint8Array): Promise<number>;
  stat(key: string): Promise<ObjectInfo>;
  /** Every object whose key starts with `prefix`, recursively, in no guaranteed order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Removes an object; removing a missing object is not an error. */
  remove(key: string): Promise<void>;
  /** Releases connections and cleans this process's temp files. */
  close(): Promise<void>;
}
