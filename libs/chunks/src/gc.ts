// Garbage collection without an exclusive lock, in two phases (after Kopia): a collection
// condemns the packs nothing references, and a later one deletes those still unreferenced once a
// grace period has passed and no backup that might have deduplicated against them is running.
// Why each step is safe is said where it happens; the order of steps 1-3 is what makes it so.
import type { GarbageCollectionOptions, GarbageCollectionReport, ReferencedChunks, RepositoryOptions } from './api.js';
import { readIndexFile, writeIndexFile, type IndexedPack } from './index-files.js';
import { listKeys } from './json.js';
import { INDEX_PREFIX, PACKS_PREFIX, condemnedKey, isIndexKey, packIdOfKey, packKey } from './layout.js';
import { listSessions, loadCondemned, writeCondemned, type ListedSession } from './markers.js';
import { readPackHeader } from './pack.js';
import { DEFAULT_SESSION_STALE_MS } from './repository.js';

export const DEFAULT_GRACE_MS = 60 * 60 * 1000;
/**
 * A session that started up to this long after a condemnation still holds its deletion back: it
 * may have read the condemned set just before the condemned file became visible, and the clocks of
 * the backup hosts and of the collector's need not agree to the second.
 */
export const CONDEMNATION_MARGIN_MS = 5 * 60 * 1000;

export async function collectGarbage(options: RepositoryOptions, referencedChunks: ReferencedChunks, gc: GarbageCollectionOptions = {}): Promise<GarbageCollectionReport> {
  const { backend } = options;
  const now = gc.now ?? options.now ?? (() => new Date());
  const graceMs = gc.graceMs ?? DEFAULT_GRACE_MS;
  const staleMs = gc.sessionStaleMs ?? options.sessionStaleMs ?? DEFAULT_SESSION_STALE_MS;

  // (1) What exists. Index files and packs written after this point are not ours to judge.
  const indexKeys = (await listKeys(backend, INDEX_PREFIX)).filter(isIndexKey);
  const indexed = new Map<string, IndexedPack>();
  for (const key of indexKeys) {
    for (const pack of await readIndexFile(backend, key)) if (!indexed.has(pack.packId)) indexed.set(pack.packId, pack);
  }
  const packSizes = new Map<string, number>();
  for await (const object of backend.list(PACKS_PREFIX)) {
    const packId = packIdOfKey(object.key);
    if (packId !== undefined) packSizes.set(packId, object.size);
  }
  const previous = await loadCondemned(backend);

  // (2) Who is running. A backup that commits after this listing is seen by (3); one that starts
  // after it started after every condemnation this run acts on, and so never dedups against them.
  const at = now().getTime();
  const live = (await listSessions(backend)).filter((session) => at - session.refreshedAt <= staleMs);

  // (3) What the committed snapshots reference, now.
  const referenced = await referencedChunks();

  const condemned = new Map<string, number>();
  const packsCondemned: string[] = [];
  const packsRescued: string[] = [];
  const doomed: string[] = [];
  const recovered: IndexedPack[] = [];
  const holding = new Set<string>();
  let bytesDeleted = 0;
  let bytesUnreferencedInLivePacks = 0;
  for (const [packId, size] of packSizes) {
    const pack = indexed.get(packId);
    const since = previous.packs.get(packId);
    if (pack !== undefined && pack.blobs.some((blob) => referenced.has(blob.id))) {
      if (since !== undefined) packsRescued.push(packId);
      for (const blob of pack.blobs) if (!referenced.has(blob.id)) bytesUnreferencedInLivePacks += blob.length;
      continue;
    }
    // (4) Unreferenced, or unindexed (a running backup's, or a crashed one's): condemned first.
    if (since === undefined) {
      condemned.set(packId, at);
      packsCondemned.push(packId);
      continue;
    }
    // (5) Condemned by an earlier collection: deleted only after the grace period, and only if no
    // live backup started before the condemnation (it may have deduplicated against the pack).
    const blocking = live.filter((session: ListedSession) => session.startedAt < since + CONDEMNATION_MARGIN_MS);
    if (at - since < graceMs || blocking.length > 0) {
      condemned.set(packId, since);
      for (const session of blocking) holding.add(session.sessionId);
      continue;
    }
    if (pack === undefined) {
      // The bucket is the truth: an unindexed pack that a snapshot references (its backup committed
      // but its index file was lost) is indexed again instead of deleted.
      const header = await readPackHeader(backend, packId).catch(() => undefined);
      if (header !== undefined && header.blobs.some((blob) => referenced.has(blob.id))) {
        recovered.push({ packId, pipeline: header.pipeline, blobs: header.blobs });
        packsRescued.push(packId);
        continue;
      }
    }
    doomed.push(packId);
    bytesDeleted += size;
  }

  let indexFilesAfter = indexKeys.length;
  if (gc.dryRun !== true) {
    // (6) The index first, so that a reader never finds a deleted pack in it; the files it replaces
    // are removed after the new one is written, and files written since (1) are left alone.
    const deleted = new Set(doomed);
    if (doomed.length > 0 || recovered.length > 0 || indexKeys.length > 1) {
      const kept = [...[...indexed.values()].filter((pack) => !deleted.has(pack.packId)), ...recovered];
      const written = kept.length > 0 ? await writeIndexFile(backend, kept) : undefined;
      for (const key of indexKeys) if (key !== written) await backend.remove(key);
      indexFilesAfter = written === undefined ? 0 : 1;
    }
    if (!sameSet(condemned, previous.packs) || previous.keys.length > 1) {
      const key = condemnedKey(new Date(at));
      await writeCondemned(backend, key, condemned);
      for (const old of previous.keys) await backend.remove(old);
    }
    for (const packId of doomed) await backend.remove(packKey(packId));
  }

  return {
    referencedChunks: referenced.size,
    packs: packSizes.size,
    packsCondemned,
    packsDeleted: doomed,
    packsRescued,
    bytesDeleted,
    bytesUnreferencedInLivePacks,
    indexFilesBefore: indexKeys.length,
    indexFilesAfter,
    liveSessions: [...holding],
  };
}

function sameSet(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}
