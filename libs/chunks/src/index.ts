export type {
  BlobLocation, ChunkId, ChunkRepository, ChunkerSettings, GarbageCollectionOptions, GarbageCollectionReport, PutResult, ReferencedChunks,
  RepositoryOptions, UploadSession,
} from './api.js';
export { openChunkRepository, collectGarbage, rebuildIndex, chunkStream, DEFAULT_CHUNKER, CHUNKER_ALGORITHM, CHUNKS_ROOT } from './stubs.js';
