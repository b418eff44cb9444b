// Rebuilding the index from the packs' own headers: the bucket is the truth, index files are a
// cache of it.
import type { StorageBackend } from '@tidemark/storage';
import type { RepositoryOptions } from './api.js';
import { writeIndexFile, type IndexedPack } from './index-files.js';
import { listKeys } from './json.js';
import { INDEX_PREFIX, PACKS_PREFIX, isIndexKey, packIdOfKey } from './layout.js';
import { readPackHeader } from './pack.js';

export interface RebuildReport {
  readonly packs: number;
  readonly chunks: number;
  /** Packs whose header could not be read: left in place, in no index. */
  readonly damagedPacks: readonly string[];
}

/** Writes one index file from every pack's header, then removes the index files listed before. */
export async function rebuildIndex(backend: StorageBackend, _options?: Partial<RepositoryOptions>): Promise<RebuildReport> {
  // Listed first: index files written while the packs are read (by running backups) are kept.
  const oldKeys = (await listKeys(backend, INDEX_PREFIX)).filter(isIndexKey);
  const packs: IndexedPack[] = [];
  const damagedPacks: string[] = [];
  for (const key of await listKeys(backend, PACKS_PREFIX)) {
    const packId = packIdOfKey(key);
    if (packId === undefined) continue;
    try {
      const header = await readPackHeader(backend, packId);
      packs.push({ packId, pipeline: header.pipeline, blobs: header.blobs });
    } catch (error) {
      if (!(error instanceof Error && 'code' in error && (error.code === 'INTEGRITY_FORMAT' || error.code === 'STORAGE_NOT_FOUND'))) throw error;
      damagedPacks.push(packId);
    }
  }
  const written = packs.length > 0 ? await writeIndexFile(backend, packs) : undefined;
  for (const key of oldKeys) if (key !== written) await backend.remove(key);
  return { packs: packs.length, chunks: packs.reduce((sum, pack) => sum + pack.blobs.length, 0), damagedPacks };
}
