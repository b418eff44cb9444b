// The collection snapshot flow: create (wait=true) → stream the download to the caller, who
// stores it → sha256 of the bytes, checked against Qdrant's checksum when it gives one → delete
// the server-side snapshot in every case, failures included (no litter on the Qdrant disk).
//
// Coverage. On a single node, a collection snapshot holds every shard of the collection (they
// are all local), so it is complete. In distributed mode a collection snapshot holds only the
// shards of the node that answered: that is NOT covered, and this module refuses it rather than
// silently back up one node's part. Use a logical export (export-format.ts) there: it reads
// every shard through the API and restores into any topology.
import { createHash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { QdrantPort, SnapshotInfo } from './port.js';

export const SNAPSHOT_FORMAT = 'qdrant-collection-snapshot';

export interface SnapshotOptions<T> {
  readonly collection: string;
  /** Stores the snapshot's bytes (e.g. through encodeStream into the ArtifactStore). */
  readonly store: (bytes: Readable, snapshot: SnapshotInfo) => Promise<T>;
  /**
   * Told each time Qdrant answers a poll of the collection's snapshots while it creates the new
   * one: the create is a single request that may run for minutes, and a Qdrant that still
   * answers is working on it. A Qdrant that stops answering reports nothing, so a stall shows.
   */
  readonly progress?: (what: string) => void;
  /** How often to poll while the snapshot is created; 5 s by default. */
  readonly pollMs?: number;
  /** Told when the server-side snapshot could not be deleted (it is also retried twice). */
  readonly onCleanupError?: (error: unknown, snapshot: string) => void;
}

export interface SnapshotOutcome<T> {
  readonly stored: T;
  readonly snapshot: SnapshotInfo;
  /** Our sha256 of the snapshot's bytes as Qdrant served them. */
  readonly sha256: string;
  readonly bytes: number;
  /** Qdrant's own sha256, or null when it gave none. */
  readonly qdrantSha256: string | null;
}

/** Refuses distributed clusters: a collection snapshot would hold only one node's shards. */
export async function assertSnapshotCoverage(port: QdrantPort, collection: string): Promise<void> {
  const cluster = await port.cluster();
  if (cluster.enabled && cluster.peers > 1) {
    throw new TidemarkError(
      'COMMAND_INVALID',
      `qdrant runs in distributed mode with ${cluster.peers} peers: a snapshot of ${collection} would hold only one node's shards; use kind "export", which covers every shard`,
    );
  }
}

/** A pass-through that hashes and counts, and fails the stream at its end on a checksum mismatch. */
export function checksumTap(expected: string | null): Transform & { sha256(): string; bytes(): number } {
  const hash = createHash('sha256');
  let bytes = 0;
  let digest: string | undefined;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      digest = hash.digest('hex');
      if (expected !== null && expected.toLowerCase() !== digest) {
        callback(new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', `the snapshot qdrant served hashes to ${digest}, qdrant's checksum says ${expected}; nothing was stored, retry the backup`));
        return;
      }
      callback();
    },
  });
  return Object.assign(tap, {
    sha256: () => {
      if (digest === undefined) throw new TidemarkError('INTERNAL', 'the snapshot stream has not ended yet');
      return digest;
    },
    bytes: () => bytes,
  });
}

async function pollingWhile<T>(work: Promise<T>, poll: () => Promise<void>, everyMs: number): Promise<T> {
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    // A failed poll is no progress, and nothing more: the create request reports its own failure.
    void poll().catch(() => undefined).finally(() => (polling = false));
  }, everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

async function deleteQuietly(port: QdrantPort, collection: string, snapshot: string, onError?: (error: unknown, snapshot: string) => void): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await port.deleteSnapshot(collection, snapshot);
      return;
    } catch (error) {
      if (error instanceof TidemarkError && error.code === 'TARGET_UNKNOWN') return; // already gone
      lastError = error;
    }
  }
  onError?.(lastError, snapshot);
}

/** Snapshots one collection and hands its bytes to `store`; always deletes the server-side snapshot. */
export async function snapshotCollection<T>(port: QdrantPort, options: SnapshotOptions<T>): Promise<SnapshotOutcome<T>> {
  const { collection } = options;
  await assertSnapshotCoverage(port, collection);
  const before = new Set((await port.listSnapshots(collection)).map((s) => s.name));
  let snapshot: SnapshotInfo;
  try {
    const created = port.createSnapshot(collection);
    const { progress } = options;
    snapshot = progress === undefined ? await created : await pollingWhile(created, async () => {
      const listed = await port.listSnapshots(collection);
      progress(`qdrant is creating a snapshot of ${collection} (${listed.length} listed)`);
    }, options.pollMs ?? 5_000);
  } catch (error) {
    // A create that timed out on our side may still finish on Qdrant's: remove what appeared.
    try {
      for (const s of await port.listSnapshots(collection)) {
        if (!before.has(s.name)) await deleteQuietly(port, collection, s.name, options.onCleanupError);
      }
    } catch {
      // Qdrant is unreachable: the original error says so.
    }
    throw error;
  }
  try {
    const body = await port.downloadSnapshot(collection, snapshot.name);
    const tap = checksumTap(snapshot.checksum);
    body.once('error', (error) => tap.destroy(error));
    const stored = await options.store(body.pipe(tap), snapshot);
    return { stored, snapshot, sha256: tap.sha256(), bytes: tap.bytes(), qdrantSha256: snapshot.checksum };
  } finally {
    await deleteQuietly(port, collection, snapshot.name, options.onCleanupError);
  }
}
