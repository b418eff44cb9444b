export type {
  BlobLocation, ChunkId, ChunkRepository, ChunkerSettings, GarbageCollectionOptions, GarbageCollectionReport, PutResult, ReferencedChunks,
  RepositoryOptions, UploadSession,
} from './api.js';
export { openChunkRepository } from './repository.js';
export { collectGarbage } from './gc.js';
export { rebuildIndex, type RebuildReport } from './rebuild.js';
export { chunkStream, DEFAULT_CHUNKER, CHUNKER_ALGORITHM } from './chunker.js';
export { CHUNKS_ROOT } from './layout.js';
