// Index files: immutable JSON objects that say which pack holds which chunk, one per flushed
// session (and one per collection or rebuild that rewrites them). Named by the sha256 of their
// content, so writing the same index twice is harmless.
import { createHash } from 'node:crypto';
import type { PipelineFacts } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';
import { CHUNK_ID_PATTERN } from './chunk-id.js';
import { formatError, parsePipeline, readJson, saveJson } from './json.js';
import { indexKey } from './layout.js';
import { isCount, type PackBlob } from './pack.js';

export const INDEX_VERSION = 1;
/** An index of ten million chunks is about 1 GiB of JSON: beyond that, something else wrote it. */
const MAX_INDEX_BYTES = 2 ** 30;

export interface IndexedPack {
  readonly packId: string;
  readonly pipeline: PipelineFacts;
  readonly blobs: readonly PackBlob[];
}

type StoredBlob = [id: string, offset: number, length: number, rawBytes: number];

interface StoredIndex {
  readonly indexVersion: 1;
  readonly packs: readonly { packId: string; pipeline: PipelineFacts; blobs: StoredBlob[] }[];
}

/** Writes one index file for `packs`; returns its key. */
export async function writeIndexFile(backend: StorageBackend, packs: readonly IndexedPack[]): Promise<string> {
  const stored: StoredIndex = {
    indexVersion: INDEX_VERSION,
    packs: packs.map((pack) => ({ packId: pack.packId, pipeline: pack.pipeline, blobs: pack.blobs.map((blob): StoredBlob => [blob.id, blob.offset, blob.length, blob.rawBytes]) })),
  };
  const text = JSON.stringify(stored);
  const key = indexKey(createHash('sha256').update(text).digest('hex'));
  await saveJson(backend, key, stored);
  return key;
}

/** The packs an index file lists; [] when it was removed meanwhile (a collection rewrote it). */
export async function readIndexFile(backend: StorageBackend, key: string): Promise<IndexedPack[]> {
  const json = (await readJson(backend, key, MAX_INDEX_BYTES)) as Partial<StoredIndex> | undefined;
  if (json === undefined) return [];
  if (json === null || typeof json !== 'object' || json.indexVersion !== INDEX_VERSION || !Array.isArray(json.packs)) throw formatError(key, 'is not an index file of a known version');
  return json.packs.map((pack) => {
    const pipeline = parsePipeline(pack?.pipeline);
    if (typeof pack?.packId !== 'string' || !CHUNK_ID_PATTERN.test(pack.packId) || pipeline === undefined || !Array.isArray(pack.blobs)) throw formatError(key, 'lists a pack that is not valid');
    const blobs = (pack.blobs as unknown[]).map((blob): PackBlob => {
      if (!Array.isArray(blob) || typeof blob[0] !== 'string' || !CHUNK_ID_PATTERN.test(blob[0]) || !isCount(blob[1]) || !isCount(blob[2]) || !isCount(blob[3])) {
        throw formatError(key, `lists a blob of pack ${pack.packId} that is not valid`);
      }
      return { id: blob[0], offset: blob[1], length: blob[2], rawBytes: blob[3] };
    });
    return { packId: pack.packId, pipeline, blobs };
  });
}
