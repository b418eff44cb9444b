// Placeholders with the final signatures, replaced by the implementation.
import { TidemarkError } from '@tidemark/contracts';
import type { ChunkRepository, ChunkerSettings, GarbageCollectionOptions, GarbageCollectionReport, ReferencedChunks, RepositoryOptions } from './api.js';
import type { StorageBackend } from '@tidemark/storage';

export const CHUNKS_ROOT = 'chunks/';
export const CHUNKER_ALGORITHM = 'fastcdc-gear-v1';
export const DEFAULT_CHUNKER: ChunkerSettings = { minBytes: 256 * 1024, avgBytes: 1024 * 1024, maxBytes: 4 * 1024 * 1024 };

const todo = (): never => { throw new TidemarkError('INTERNAL', 'not implemented yet'); };

/** Opens the repository in `options.backend`: loads every index file and the condemned set. */
export function openChunkRepository(options: RepositoryOptions): Promise<ChunkRepository> { void options; return Promise.resolve(todo()); }
/** Mark and (two-phase) sweep: see api.ts. Safe against concurrent backups without an exclusive lock. */
export function collectGarbage(options: RepositoryOptions, referencedChunks: ReferencedChunks, gc?: GarbageCollectionOptions): Promise<GarbageCollectionReport> { void options; void referencedChunks; void gc; return Promise.resolve(todo()); }
/** Rewrites the index from the packs' own headers alone (the bucket is the truth). */
export function rebuildIndex(backend: StorageBackend, options: RepositoryOptions): Promise<{ packs: number; chunks: number }> { void backend; void options; return Promise.resolve(todo()); }
/** Splits a byte stream into content-defined chunks of DEFAULT_CHUNKER (or `settings`) sizes. Holds at most maxBytes plus one read. */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, settings: ChunkerSettings = DEFAULT_CHUNKER): AsyncGenerator<Buffer> { void source; void settings; todo(); }
