import type { FilesSourceFacts, JobProgress } from '@tidemark/contracts';
import type { ChunkRepository } from '@tidemark/chunks';
import type { Readable } from 'node:stream';
import type { FilesSource } from '../sources/source.js';
import type { TreeEntry } from '../tree/entry.js';

export interface SnapshotOptions {
  readonly source: FilesSource;
  readonly repository: ChunkRepository;
  /** The session id (the artifact id): the GC's marker for this backup. */
  readonly sessionId: string;
  /** The parent snapshot's tree in walk order (decoded), for incremental change detection. */
  readonly parentTree?: AsyncIterable<TreeEntry>;
  /** Read and hash every file even when the parent says it is unchanged. */
  readonly fullRehash?: boolean;
  /** Files read at once (default 8). */
  readonly concurrency?: number;
  /** Fail (non-retryable SOURCE_UNREADABLE) instead of reporting unreadable files. */
  readonly strict?: boolean;
  readonly onProgress?: (progress: Pick<JobProgress, 'filesDone' | 'bytesDone' | 'current'>) => void;
  readonly signal?: AbortSignal;
}

export interface SnapshotResult {
  /** The tree as NDJSON bytes (header line first); pipe it through encodeStream into saveData. Ends after every chunk is flushed. */
  readonly tree: Readable;
  /** Resolves after `tree` ended and the session was flushed: the manifest's `source`. */
  readonly facts: Promise<FilesSourceFacts>;
  /** Removes the session marker: call after the manifest is committed, or on failure. */
  close(): Promise<void>;
}
