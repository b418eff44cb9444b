// storeFile for repositories that run on one thread (in-memory doubles in tests): the same chunks,
// ids and digest as the codec workers produce, through put().
import { createHash } from 'node:crypto';
import { lstat, open } from 'node:fs/promises';
import type { ChunkId, ChunkerSettings, FileInput, PutResult, StoredFile } from './api.js';
import { chunkStream } from './chunker.js';
import { LOCAL_READ_FLAGS, afterReading, notARegularFile } from './local-file.js';

export interface InlineStore {
  readonly chunker: ChunkerSettings;
  chunkId(plain: Uint8Array): ChunkId;
  put(id: ChunkId, plain: Uint8Array): Promise<PutResult>;
}

export async function storeFileOnThisThread(store: InlineStore, input: FileInput, onChunk?: (put: PutResult, size: number) => void, signal?: AbortSignal): Promise<StoredFile> {
  const content = 'path' in input ? await openLocal(input.path) : input.stream;
  const hash = createHash('sha256');
  const chunks: { id: ChunkId; size: number }[] = [];
  let size = 0;
  for await (const chunk of chunkStream(content, store.chunker)) {
    signal?.throwIfAborted();
    hash.update(chunk);
    const id = store.chunkId(chunk);
    chunks.push({ id, size: chunk.length });
    size += chunk.length;
    onChunk?.(await store.put(id, chunk), chunk.length);
  }
  return { chunks, sha256: hash.digest('hex'), size, ...('path' in input ? { after: await statAfter(input.path) } : {}) };
}

/** As the codec worker opens a path (local-file.ts). */
async function openLocal(path: Buffer): Promise<AsyncIterable<Uint8Array>> {
  const handle = await open(path, LOCAL_READ_FLAGS);
  if (!(await handle.stat()).isFile()) {
    await handle.close();
    throw notARegularFile();
  }
  return handle.createReadStream();
}

async function statAfter(path: Buffer): Promise<StoredFile['after']> {
  return lstat(path, { bigint: true }).then((stats) => afterReading(stats), (error: unknown) => afterReading(undefined, error));
}
