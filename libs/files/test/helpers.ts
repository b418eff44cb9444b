// What the snapshot tests share: an in-memory chunk repository that counts what it is asked to
// store, building trees on disk, and reading a tree stream back.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { storeFileOnThisThread, type BlobLocation, type ChunkId, type ChunkRepository, type ChunkerSettings, type PutResult, type UploadSession } from '@tidemark/chunks';
import { parseTree, type TreeEntry, type TreeHeader } from '../src/index.js';


export interface MemoryRepository extends ChunkRepository {
  /** Every chunk stored so far. */
  readonly chunks: Map<ChunkId, Buffer>;
  /** put() calls that stored a chunk, over every session. */
  stored: number;
  readonly sessions: string[];
  readonly closedSessions: string[];
  readonly flushedSessions: string[];
}

/** Small chunks, so that small test files still make several. */
export const TEST_CHUNKER: ChunkerSettings = { minBytes: 4 * 1024, avgBytes: 16 * 1024, maxBytes: 64 * 1024 };

/** An in-memory ChunkRepository: sha256 ids, no packs; enough to check what a snapshot stores. */
export function memoryRepository(chunker: ChunkerSettings = TEST_CHUNKER): MemoryRepository {
  const chunks = new Map<ChunkId, Buffer>();
  const repository: MemoryRepository = {
    keyed: false,
    chunker,
    chunks,
    stored: 0,
    sessions: [],
    closedSessions: [],
    flushedSessions: [],
    chunkId: (plain) => createHash('sha256').update(plain).digest('hex'),
    has: (id) => chunks.has(id),
    locate: (id): BlobLocation | undefined => {
      const plain = chunks.get(id);
      return plain === undefined ? undefined : { id, packId: 'memory', offset: 0, length: plain.length, rawBytes: plain.length };
    },
    openSession: (sessionId) => {
      repository.sessions.push(sessionId);
      const session: UploadSession = {
        id: sessionId,
        put: (id, plain): Promise<PutResult> => {
          if (chunks.has(id)) return Promise.resolve({ stored: false, storedBytes: 0 });
          chunks.set(id, Buffer.from(plain));
          repository.stored += 1;
          return Promise.resolve({ stored: true, storedBytes: plain.length + 32 });
        },
        storeFile: (input, onChunk, signal) => storeFileOnThisThread({ chunker, chunkId: repository.chunkId, put: session.put }, input, onChunk, signal),
        has: (id) => chunks.has(id),
        flush: () => {
          repository.flushedSessions.push(sessionId);
          return Promise.resolve();
        },
        touch: () => Promise.resolve(),
        close: () => {
          repository.closedSessions.push(sessionId);
          return Promise.resolve();
        },
      };
      return Promise.resolve(session);
    },
    readChunk: (id) => {
      const plain = chunks.get(id);
      return plain === undefined ? Promise.reject(new Error(`no chunk ${id}`)) : Promise.resolve(plain);
    },
    readPackChunks: () => {
      throw new Error('not used by snapshot tests');
    },
    refresh: () => Promise.resolve(),
  };
  return repository;
}

/**
 * The tree a snapshot streamed, parsed back (checked line by line by parseTree) once the snapshot
 * ended (its segments are readable once the session flushed), its segments read from `repository`.
 */
export async function readTree(tree: Readable | AsyncIterable<Uint8Array>, repository?: Pick<ChunkRepository, 'readChunk'>): Promise<{ header: TreeHeader; entries: TreeEntry[]; segments: string[] }> {
  const bytes: Uint8Array[] = [];
  for await (const piece of tree) bytes.push(piece as Uint8Array);
  const segments: string[] = [];
  const parsed = parseTree((async function* () { yield* bytes; })(), repository === undefined ? {} : { readSegments: (refs) => Promise.all(refs.map((ref) => repository.readChunk(ref.segment))), onSegment: (ref) => segments.push(ref.segment) });
  const entries: TreeEntry[] = [];
  for await (const entry of parsed.entries) entries.push(entry);
  return { header: await parsed.header, entries, segments };
}

/** Entries as an async iterable: a parent tree for the next snapshot. */
export async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield await Promise.resolve(item);
}

/** Reassembles a file from the repository, for checking chunk lists. */
export function contentOf(repository: MemoryRepository, entry: TreeEntry): Buffer {
  return Buffer.concat((entry.chunks ?? []).map((chunk) => repository.chunks.get(chunk.id) ?? Buffer.alloc(0)));
}
