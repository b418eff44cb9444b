// The repository as a backup, a restore or the verifier sees it: the index and the condemned set
// in memory, sessions to write, chunks to read.
import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { BlobLocation, ChunkId, ChunkRepository, RepositoryOptions, UploadSession } from './api.js';
import { decodeBlob } from './blob.js';
import { chunkIdFunction } from './chunk-id.js';
import { ChunkIndex } from './chunk-index.js';
import { DEFAULT_CHUNKER } from './chunker.js';
import { readIndexFile } from './index-files.js';
import { listKeys, readBounded } from './json.js';
import { INDEX_PREFIX, checkSessionId, isIndexKey, packKey } from './layout.js';
import { loadCondemned, type CondemnedSet } from './markers.js';
import { ChunkSession } from './session.js';

export const DEFAULT_PACK_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SESSION_STALE_MS = 6 * 60 * 60 * 1000;
/** A stored blob is at most a max-size chunk plus what compression and encryption add to it. */
const MAX_BLOB_BYTES = 2 * DEFAULT_CHUNKER.maxBytes + 1024 * 1024;

export async function openChunkRepository(options: RepositoryOptions): Promise<ChunkRepository> {
  const repository = new Repository(options);
  await repository.refresh();
  return repository;
}

class Repository implements ChunkRepository {
  readonly keyed: boolean;
  readonly chunker = DEFAULT_CHUNKER;
  readonly chunkId: (plain: Uint8Array) => ChunkId;
  private index = new ChunkIndex();
  private loadedIndexFiles = new Set<string>();
  private condemned: CondemnedSet = new Map();
  private readonly now: () => Date;

  constructor(private readonly options: RepositoryOptions) {
    this.keyed = options.keyRing.current !== undefined;
    this.chunkId = chunkIdFunction(options.keyRing.current);
    this.now = options.now ?? (() => new Date());
  }

  has(id: ChunkId): boolean {
    return this.index.has(id, this.usablePack);
  }

  locate(id: ChunkId): BlobLocation | undefined {
    return this.index.locate(id, this.usablePack);
  }

  async openSession(sessionId: string): Promise<UploadSession> {
    checkSessionId(sessionId);
    const { backend, keyRing, compression, compressionLevel } = this.options;
    const session = new ChunkSession(
      {
        backend,
        encoding: { compression, compressionLevel, key: keyRing.current },
        packBytes: this.options.packBytes ?? DEFAULT_PACK_BYTES,
        sessionStaleMs: this.options.sessionStaleMs ?? DEFAULT_SESSION_STALE_MS,
        now: this.now,
        usable: (id) => this.has(id),
        indexed: (packs) => packs.forEach((pack) => this.index.add(pack)),
      },
      sessionId,
    );
    await session.start();
    // Only now, with the marker written, may the session trust the condemned set: a collection that
    // condemns a pack after this point counts the session in before it deletes anything.
    await this.refresh();
    return session;
  }

  async readChunk(id: ChunkId): Promise<Buffer> {
    const location = this.index.locate(id, this.usablePack);
    if (location === undefined) throw missingChunk(id);
    const stored = await readBounded(await this.options.backend.open(packKey(location.packId), { offset: location.offset, length: location.length }), location.length, `chunk ${id}`);
    if (stored.length !== location.length) throw truncatedBlob(location);
    return decodeBlob(stored, this.pipelineOf(location.packId), this.options.keyRing, id);
  }

  async *readPackChunks(packId: string, locations: readonly BlobLocation[]): AsyncIterable<{ location: BlobLocation; plain: Buffer }> {
    if (locations.length === 0) return;
    const pipeline = this.pipelineOf(packId);
    const sorted = [...locations].sort((a, b) => a.offset - b.offset);
    const first = sorted[0]!;
    const end = Math.max(...sorted.map((location) => location.offset + location.length));
    const reader = new RangeReader(await this.options.backend.open(packKey(packId), { offset: first.offset, length: end - first.offset }), first.offset);
    try {
      let previous: { location: BlobLocation; plain: Buffer } | undefined;
      for (const location of sorted) {
        if (location.packId !== packId) throw new RangeError(`chunk ${location.id} is in pack ${location.packId}, not in ${packId}`);
        // The same blob asked for twice (two files share a chunk): decoded once.
        if (previous !== undefined && previous.location.offset === location.offset && previous.location.id === location.id) {
          yield { location, plain: previous.plain };
          continue;
        }
        if (location.length > MAX_BLOB_BYTES) throw truncatedBlob(location);
        const stored = await reader.read(location.offset, location.length);
        if (stored === undefined) throw truncatedBlob(location);
        previous = { location, plain: await decodeBlob(stored, pipeline, this.options.keyRing, location.id) };
        yield previous;
      }
    } finally {
      reader.close();
    }
  }

  async refresh(): Promise<void> {
    const { backend } = this.options;
    const keys = (await listKeys(backend, INDEX_PREFIX)).filter(isIndexKey);
    const present = new Set(keys);
    // A file gone means a collection rewrote the index (and may have deleted packs): start over,
    // so nothing deleted stays usable for dedup.
    const rewritten = [...this.loadedIndexFiles].some((key) => !present.has(key));
    const index = rewritten ? new ChunkIndex() : this.index;
    const loaded = rewritten ? new Set<string>() : new Set(this.loadedIndexFiles);
    for (const key of keys) {
      if (loaded.has(key)) continue;
      for (const pack of await readIndexFile(backend, key)) index.add(pack);
      loaded.add(key);
    }
    const { packs } = await loadCondemned(backend);
    this.index = index;
    this.loadedIndexFiles = loaded;
    this.condemned = packs;
  }

  private readonly usablePack = (packId: string): boolean => !this.condemned.has(packId);

  private pipelineOf(packId: string) {
    const pipeline = this.index.pipelineOf(packId);
    if (pipeline === undefined) throw new TidemarkError('STORAGE_NOT_FOUND', `pack ${packId} is in no index file: refresh the repository, or rebuild the index if the pack exists`);
    return pipeline;
  }
}

function missingChunk(id: ChunkId): TidemarkError {
  return new TidemarkError('STORAGE_NOT_FOUND', `chunk ${id} is in no index file: the snapshot references a chunk the repository lost; rebuild the index, then verify`);
}

function truncatedBlob(location: BlobLocation): TidemarkError {
  return new TidemarkError('INTEGRITY_TRUNCATED', `pack ${location.packId} ends before chunk ${location.id} (${location.length} bytes at ${location.offset}); the pack is damaged`);
}

/** Sequential reads of blobs out of one ranged stream of a pack, skipping the gaps between them. */
class RangeReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly stream: Readable, private position: number) {
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** `length` bytes at `offset` (not before the current position), or undefined when the stream ends first. */
  async read(offset: number, length: number): Promise<Buffer | undefined> {
    let skip = offset - this.position;
    if (skip < 0) throw new RangeError('pack reads go forward only');
    while (this.pendingBytes < skip + length) {
      const next = await this.iterator.next();
      if (next.done === true) return undefined;
      this.pending.push(next.value);
      this.pendingBytes += next.value.length;
      // Drop whole pieces that lie in the gap, so a skipped region never piles up.
      while (skip > 0 && this.pending.length > 0 && this.pending[0]!.length <= skip) {
        const dropped = this.pending.shift()!;
        skip -= dropped.length;
        this.pendingBytes -= dropped.length;
        this.position += dropped.length;
      }
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const blob = Buffer.from(all.subarray(skip, skip + length));
    const rest = all.subarray(skip + length);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    this.position = offset + length;
    return blob;
  }

  close(): void {
    this.stream.destroy();
  }
}
