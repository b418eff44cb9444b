// Garbage collection of the chunk repository: what no committed files snapshot references goes,
// in two phases (condemned by one run, deleted by a later one after a grace), without a lock
// against running backups (see @tidemark/chunks).
import { TidemarkError, toErrorInfo, type ErrorInfo, type Manifest } from '@tidemark/contracts';
import { collectGarbage, type ChunkId, type GarbageCollectionReport, type RepositoryOptions } from '@tidemark/chunks';
import type { Logger } from '@tidemark/runtime';
import type { ArtifactStore } from '@tidemark/storage';
import { isFilesSnapshot, type TreeReader } from './trees.js';

export interface ChunkGcSettings {
  readonly graceMs: number;
  readonly sessionStaleMs: number;
}

export interface ChunkGcDeps {
  /** Committed snapshots are listed from the bucket itself at the moment the collector asks. */
  readonly store: Pick<ArtifactStore, 'listManifests'>;
  readonly readTree: TreeReader;
  readonly repository: RepositoryOptions;
  readonly settings: ChunkGcSettings;
  readonly logger: Logger;
  readonly now?: () => Date;
  /** Tests stand in for the collector; production uses @tidemark/chunks' collectGarbage. */
  readonly collect?: typeof collectGarbage;
}

export type ChunkGcResult =
  | { readonly ok: true; readonly snapshots: number; readonly report: GarbageCollectionReport }
  /** Nothing was deleted: the collector could not know every referenced chunk, or the bucket failed. */
  | { readonly ok: false; readonly error: ErrorInfo };

/**
 * One collection. The referenced set is every chunk of every committed files snapshot's tree,
 * read when the collector asks (after it listed the running backups' sessions). A manifest or
 * tree that cannot be read makes the whole run fail before anything is condemned or deleted:
 * a chunk it references might otherwise look unreferenced.
 */
export async function runChunkGc(deps: ChunkGcDeps): Promise<ChunkGcResult> {
  const collect = deps.collect ?? collectGarbage;
  let snapshots = 0;
  const referencedChunks = async (): Promise<ReadonlySet<ChunkId>> => {
    const manifests = await deps.store.listManifests({ engine: 'files' }, (key, error) => {
      throw new TidemarkError('INTEGRITY_FORMAT', `files manifest ${key} cannot be read (${toErrorInfo(error).message}), so the chunks it references are unknown; fix or remove it`, { cause: error, retryable: toErrorInfo(error).retryable });
    });
    const referenced = new Set<ChunkId>();
    snapshots = 0;
    for (const manifest of manifests.filter(isFilesSnapshot)) {
      await addChunksOf(manifest, deps.readTree, referenced);
      snapshots += 1;
    }
    return referenced;
  };
  try {
    const report = await collect(deps.repository, referencedChunks, {
      graceMs: deps.settings.graceMs,
      sessionStaleMs: deps.settings.sessionStaleMs,
      ...(deps.now ? { now: deps.now } : {}),
    });
    deps.logger.info({ ...summaryOf(report), snapshots }, describeReport(report, snapshots));
    return { ok: true, snapshots, report };
  } catch (error) {
    const info = toErrorInfo(error);
    deps.logger.error({ error: info }, `chunk garbage collection skipped, nothing deleted: ${info.message}`);
    return { ok: false, error: info };
  }
}

async function addChunksOf(manifest: Manifest, readTree: TreeReader, referenced: Set<ChunkId>): Promise<void> {
  try {
    for await (const entry of readTree(manifest, (ref) => referenced.add(ref.segment))) {
      for (const chunk of entry.chunks ?? []) referenced.add(chunk.id);
    }
  } catch (error) {
    const info = toErrorInfo(error);
    throw new TidemarkError(info.code, `the tree of files snapshot ${manifest.id} (target "${manifest.target}") cannot be read, so the chunks it references are unknown: ${info.message}`, { cause: error, retryable: info.retryable });
  }
}

function summaryOf(report: GarbageCollectionReport) {
  return {
    packs: report.packs,
    referencedChunks: report.referencedChunks,
    condemned: report.packsCondemned.length,
    deleted: report.packsDeleted.length,
    rescued: report.packsRescued.length,
    bytesDeleted: report.bytesDeleted,
    bytesUnreferencedInLivePacks: report.bytesUnreferencedInLivePacks,
    indexFiles: `${report.indexFilesBefore} -> ${report.indexFilesAfter}`,
    liveSessions: report.liveSessions,
  };
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** One line a person reads in the log. */
export function describeReport(report: GarbageCollectionReport, snapshots: number): string {
  const held = report.liveSessions.length > 0 ? `; ${report.liveSessions.length} running backup(s) held deletions back` : '';
  return `chunk garbage collection: ${snapshots} snapshot(s) reference ${report.referencedChunks} chunk(s) in ${report.packs} pack(s); `
    + `${report.packsCondemned.length} pack(s) condemned, ${report.packsDeleted.length} deleted (${mib(report.bytesDeleted)}), `
    + `${report.packsRescued.length} rescued; ${mib(report.bytesUnreferencedInLivePacks)} unreferenced inside packs still in use; `
    + `index files ${report.indexFilesBefore} -> ${report.indexFilesAfter}${held}`;
}
