// The repository's index in memory: where each chunk is, and how each pack was encoded.
import type { PipelineFacts } from '@tidemark/contracts';
import type { BlobLocation, ChunkId } from './api.js';
import type { IndexedPack } from './index-files.js';

export class ChunkIndex {
  private readonly locations = new Map<ChunkId, BlobLocation>();
  /** Further copies of a chunk (stored again while its first pack was condemned, or by two backups at once). */
  private readonly copies = new Map<ChunkId, BlobLocation[]>();
  private readonly pipelines = new Map<string, PipelineFacts>();
  /** One object per distinct pipeline, shared by the packs: thousands of packs, a handful of pipelines. */
  private readonly pipelineValues = new Map<string, PipelineFacts>();

  add(pack: IndexedPack): void {
    if (this.pipelines.has(pack.packId)) return;
    const text = JSON.stringify(pack.pipeline);
    let pipeline = this.pipelineValues.get(text);
    if (pipeline === undefined) this.pipelineValues.set(text, (pipeline = pack.pipeline));
    this.pipelines.set(pack.packId, pipeline);
    for (const blob of pack.blobs) {
      const location: BlobLocation = { id: blob.id, packId: pack.packId, offset: blob.offset, length: blob.length, rawBytes: blob.rawBytes };
      const first = this.locations.get(blob.id);
      if (first === undefined) this.locations.set(blob.id, location);
      else if (first.packId !== pack.packId) this.copies.set(blob.id, [...(this.copies.get(blob.id) ?? []), location]);
    }
  }

  /** A location of the chunk, in a pack `usable` accepts when there is one. */
  locate(id: ChunkId, usable: (packId: string) => boolean = () => true): BlobLocation | undefined {
    const first = this.locations.get(id);
    if (first === undefined || usable(first.packId)) return first;
    return this.copies.get(id)?.find((copy) => usable(copy.packId)) ?? first;
  }

  has(id: ChunkId, usable: (packId: string) => boolean): boolean {
    const location = this.locate(id, usable);
    return location !== undefined && usable(location.packId);
  }

  pipelineOf(packId: string): PipelineFacts | undefined {
    return this.pipelines.get(packId);
  }

  get size(): number {
    return this.locations.size;
  }
}
