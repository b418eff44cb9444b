// A small model of the files agent for collection tests: backups that chunk "files" into a
// session and commit a snapshot (the list of its chunk ids), and the committed snapshots that
// retention may remove.
import type { ChunkRepository, ReferencedChunks } from '@tidemark/chunks';
import { chunkStream } from '@tidemark/chunks';
import { KiB, reads } from './helpers.js';

export const SMALL_CHUNKER = { minBytes: 16 * KiB, avgBytes: 64 * KiB, maxBytes: 256 * KiB };

export class Snapshots {
  readonly committed = new Map<string, readonly string[]>();

  readonly referenced: ReferencedChunks = () => Promise.resolve(new Set([...this.committed.values()].flat()));

  commit(name: string, ids: readonly string[]): void {
    this.committed.set(name, ids);
  }

  forget(name: string): void {
    this.committed.delete(name);
  }
}

export interface RunningBackup {
  readonly ids: string[];
  /** Chunks that were already stored (deduplicated against). */
  readonly deduplicated: string[];
  /** Puts `data`'s chunks. */
  add(data: Buffer): Promise<void>;
  /** Flush, commit the snapshot, close: in the files agent's order. */
  commit(): Promise<void>;
}

export async function startBackup(repository: ChunkRepository, snapshots: Snapshots, name: string): Promise<RunningBackup> {
  const session = await repository.openSession(name);
  const ids: string[] = [];
  const deduplicated: string[] = [];
  return {
    ids,
    deduplicated,
    async add(data) {
      for await (const chunk of chunkStream(reads(data), SMALL_CHUNKER)) {
        const id = repository.chunkId(chunk);
        ids.push(id);
        if (!(await session.put(id, chunk)).stored) deduplicated.push(id);
        await session.touch();
      }
    },
    async commit() {
      try {
        await session.flush();
        snapshots.commit(name, ids);
      } finally {
        await session.close();
      }
    },
  };
}

/** Every chunk of every committed snapshot reads back (through a freshly opened repository). */
export async function unreadableChunks(repository: ChunkRepository, snapshots: Snapshots): Promise<string[]> {
  await repository.refresh();
  const failed: string[] = [];
  for (const [name, ids] of snapshots.committed) {
    for (const id of new Set(ids)) {
      await repository.readChunk(id).catch((error: unknown) => failed.push(`${name}: ${id} (${String(error)})`));
    }
  }
  return failed;
}
