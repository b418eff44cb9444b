export type {
  BlobLocation, ChunkFileWrite, ChunkId, FilePartWrite, WholeFileWrite, PackKind, ChunkRepository, ChunkerSettings, GarbageCollectionOptions, GarbageCollectionReport, FileInput, PackChunk, PutResult, ReferencedChunks,
  RepositoryOptions, StoredFile, UploadSession,
} from './api.js';
export { openChunkRepository } from './repository.js';
export { collectGarbage } from './gc.js';
export { rebuildIndex, type RebuildReport } from './rebuild.js';
export { chunkStream, DEFAULT_CHUNKER, CHUNKER_ALGORITHM } from './chunker.js';
export { CHUNKS_ROOT } from './layout.js';
export { storeFileOnThisThread } from './store-file.js';
export { isAllZero } from './zeros.js';
