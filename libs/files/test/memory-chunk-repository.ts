// An in-memory ChunkRepository for the restore tests (until they run on the real one): chunks are
// kept plain in "packs" of up to packBytes, located by an index, read back in offset order. A hook
// lets a test fail a pack read midway.
import { createHash } from 'node:crypto';
import type { BlobLocation, ChunkId, ChunkRepository, ChunkerSettings, PackChunk, UploadSession } from '@tidemark/chunks';
import { DEFAULT_CHUNKER } from '@tidemark/chunks';
import { TidemarkError } from '@tidemark/contracts';

export class MemoryChunkRepository implements ChunkRepository {
  readonly keyed = false;
  readonly chunker: ChunkerSettings = DEFAULT_CHUNKER;
  readonly packs = new Map<string, Buffer>();
  packReads = 0;
  /** Called before each chunk a pack read yields: throw to inject a failure. */
  beforeChunk: ((location: BlobLocation) => void) | undefined;
  private readonly index = new Map<ChunkId, BlobLocation>();
  private open: { id: string; parts: Buffer[]; bytes: number } | undefined;
  private packCount = 0;

  constructor(private readonly packBytes = 4 * 1024 * 1024) {}

  chunkId(plain: Uint8Array): ChunkId {
    return createHash('sha256').update(plain).digest('hex');
  }

  /** Stores a chunk (once) and returns its id; seal() makes the open pack readable. */
  store(plain: Buffer): ChunkId {
    const id = this.chunkId(plain);
    if (this.index.has(id)) return id;
    if (this.open === undefined || this.open.bytes + plain.length > this.packBytes) {
      this.seal();
      this.open = { id: createHash('sha256').update(`pack ${this.packCount++}`).digest('hex'), parts: [], bytes: 0 };
    }
    this.index.set(id, { id, packId: this.open.id, offset: this.open.bytes, length: plain.length, rawBytes: plain.length });
    this.open.parts.push(Buffer.from(plain));
    this.open.bytes += plain.length;
    return id;
  }

  seal(): void {
    if (this.open !== undefined) this.packs.set(this.open.id, Buffer.concat(this.open.parts));
    this.open = undefined;
  }

  has(id: ChunkId): boolean {
    return this.index.has(id);
  }

  locate(id: ChunkId): BlobLocation | undefined {
    return this.index.get(id);
  }

  openSession(): Promise<UploadSession> {
    return Promise.reject(new Error('the memory repository takes chunks through store()'));
  }

  readChunk(id: ChunkId): Promise<Buffer> {
    const location = this.index.get(id);
    const pack = location === undefined ? undefined : this.packs.get(location.packId);
    if (location === undefined || pack === undefined) return Promise.reject(new TidemarkError('STORAGE_NOT_FOUND', `no chunk ${id}`));
    return Promise.resolve(Buffer.from(pack.subarray(location.offset, location.offset + location.length)));
  }

  /** Never writes files itself (a repository may leave every chunk to the caller). */
  async *readPackChunks(packId: string, locations: readonly BlobLocation[]): AsyncIterable<PackChunk> {
    this.packReads += 1;
    const pack = this.packs.get(packId);
    if (pack === undefined) throw new TidemarkError('STORAGE_NOT_FOUND', `no pack ${packId}`);
    for (const location of [...locations].sort((a, b) => a.offset - b.offset)) {
      await Promise.resolve();
      this.beforeChunk?.(location);
      yield { location, plain: Buffer.from(pack.subarray(location.offset, location.offset + location.length)) };
    }
  }

  refresh(): Promise<void> {
    return Promise.resolve();
  }
}
