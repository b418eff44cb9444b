// Owned by the restore side. Stubs keep the final signatures.
import { TidemarkError } from '@tidemark/contracts';
import type { TreeEntry } from '../tree/entry.js';
import type { RestoreSummary, RestoreToDirectoryOptions, TreeComparison } from './api.js';
import type { ChunkRepository } from '@tidemark/chunks';

/** Restores a tree (or chosen paths) into a directory, confined to it. */
export function restoreToDirectory(options: RestoreToDirectoryOptions): Promise<RestoreSummary> {
  void options;
  return Promise.reject(new TidemarkError('INTERNAL', 'not implemented yet'));
}

export interface RestoreToS3Options {
  readonly tree: () => AsyncIterable<TreeEntry>;
  readonly repository: ChunkRepository;
  readonly endpoint: string;
  readonly region?: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  /** Key prefix the tree's paths are written under ('' or ending in '/'). */
  readonly prefix: string;
  readonly paths?: readonly string[];
  readonly overwrite?: boolean;
  readonly concurrency?: number;
  readonly onProgress?: RestoreToDirectoryOptions['onProgress'];
  readonly signal?: AbortSignal;
}

/** Restores the files of a tree as objects under bucket/prefix (streaming PUTs). */
export function restoreToS3(options: RestoreToS3Options): Promise<RestoreSummary> {
  void options;
  return Promise.reject(new TidemarkError('INTERNAL', 'not implemented yet'));
}

/** Walks `directory` on its own (no tree code) and compares paths, types, modes, sizes, sha256, link targets (and owners, mtimes) with the tree. */
export function compareDirectoryWithTree(directory: string, tree: AsyncIterable<TreeEntry>, options?: { paths?: readonly string[]; owners?: boolean; mtimes?: boolean }): Promise<TreeComparison> {
  void directory; void tree; void options;
  return Promise.reject(new TidemarkError('INTERNAL', 'not implemented yet'));
}
