import type { ChunkRepository } from '@tidemark/chunks';
import type { JobProgress } from '@tidemark/contracts';
import type { TreeEntry } from '../tree/entry.js';

export interface RestoreToDirectoryOptions {
  /** The decoded tree, in walk order. */
  readonly tree: () => AsyncIterable<TreeEntry>;
  readonly repository: ChunkRepository;
  /** Absolute directory. Created when missing; an existing non-empty one needs `overwrite`. */
  readonly intoDirectory: string;
  /** Only these paths (and, for directories, what is under them). */
  readonly paths?: readonly string[];
  /** Move the existing directory aside, restore, then remove it (or move it back on failure). */
  readonly overwrite?: boolean;
  /** Restore owners (lchown): default when running as root. */
  readonly owners?: boolean;
  /** Packs read at once, one ranged read each (default 8); S3: objects written at once (default 4). */
  readonly concurrency?: number;
  readonly onProgress?: (progress: Pick<JobProgress, 'filesDone' | 'bytesDone' | 'current'>) => void;
  readonly signal?: AbortSignal;
}

export interface RestoreSummary {
  readonly files: number;
  readonly directories: number;
  readonly symlinks: number;
  readonly bytes: number;
  /** Entries refused by confinement (absolute, '..', through a symlink, device files) with why. */
  readonly refused: readonly { readonly path: string; readonly reason: string }[];
  /** Hard links made (directory restores; each also counts its first path once in `files`). */
  readonly hardlinks?: number;
  /** Entries left out with why, though not refused: files not stored as good, and (S3) what objects cannot be. */
  readonly skipped?: readonly { readonly path: string; readonly reason: string }[];
}

/** Result of comparing a directory with a tree by an independent walk (verifier, tests). */
export interface TreeComparison {
  readonly ok: boolean;
  readonly filesCompared: number;
  readonly bytesCompared: number;
  /** The first differences (at most 100), and how many in all. */
  readonly differences: readonly { readonly path: string; readonly field: string; readonly expected?: unknown; readonly actual?: unknown }[];
  readonly differenceCount: number;
}
