// WAL retention and the WAL orphan sweep, against the bucket. Plans come from wal-plan.ts.
import { toErrorInfo, type ErrorInfo } from '@tidemark/contracts';
import type { Logger } from '@tidemark/runtime';
import type { WalArchive } from '@tidemark/storage';
import type { Catalog } from '../catalog/catalog.js';
import { baseBackupStarts } from '../wal/check-run.js';
import { bytesOf, listWalObjects } from '../wal/objects.js';
import { planWalRetention, type ClusterRetention, type WalRemoval } from './wal-plan.js';

export interface WalRetentionDeps {
  readonly archive: Pick<WalArchive, 'backend' | 'remove' | 'readManifest'>;
  readonly catalog: Pick<Catalog, 'select'>;
  readonly logger: Logger;
}

export interface WalRetentionResult {
  readonly target: string;
  readonly removed: readonly WalRemoval[];
  readonly removedBytes: number;
  readonly keptFiles: number;
  readonly clusters: readonly ClusterRetention[];
  /** Set when the pass stopped early for this target; the next pass resumes. */
  readonly error?: ErrorInfo;
}

/**
 * Removes the WAL of `target` that no retained base backup needs (see wal-plan.ts), oldest
 * first, each file manifest first (WalArchive.remove). Stops at the first failure: what is left
 * is still a gap-free suffix, and the next pass carries on.
 */
export async function pruneWal(target: string, maxAgeDays: number, partialGraceMs: number, deps: WalRetentionDeps, now: Date): Promise<WalRetentionResult> {
  const objects = await listWalObjects(deps.archive.backend, target);
  const committed = [...objects.values()].filter((o) => o.manifest !== undefined);
  if (committed.length === 0) return { target, removed: [], removedBytes: 0, keptFiles: 0, clusters: [] };

  const records = deps.catalog.select({ engine: 'pg', target }).filter((r) => r.manifest.kind === 'base');
  const retainedBaseBackups = baseBackupStarts(records, deps.logger);
  if (retainedBaseBackups.length !== records.length) {
    // A base backup whose start we cannot read might need any of this WAL: keep it all.
    deps.logger.warn({ target, unreadable: records.length - retainedBaseBackups.length }, 'WAL retention skipped for this target: a base backup manifest lacks valid start facts; fix or remove it');
    return { target, removed: [], removedBytes: 0, keptFiles: committed.length, clusters: [] };
  }

  const plan = planWalRetention({
    listing: committed.map((o) => ({ systemIdentifier: o.systemIdentifier, file: o.file, modifiedAt: (o.manifest as NonNullable<typeof o.manifest>).modifiedAt })),
    retainedBaseBackups,
    maxAgeDays,
    now,
    partialGraceMs,
  });

  const removed: WalRemoval[] = [];
  let removedBytes = 0;
  let error: ErrorInfo | undefined;
  for (const removal of plan.removals) {
    try {
      await deps.archive.remove(target, removal.systemIdentifier, removal.file);
    } catch (cause) {
      error = toErrorInfo(cause);
      deps.logger.error({ target, systemIdentifier: removal.systemIdentifier, file: removal.file, error }, 'removing a WAL file failed; WAL retention for this target resumes at the next pass');
      break;
    }
    removed.push(removal);
    const entry = objects.get(`${target}/${removal.systemIdentifier}/${removal.file}`);
    removedBytes += entry ? bytesOf(entry) : 0;
  }

  const result: WalRetentionResult = { target, removed, removedBytes, keptFiles: committed.length - removed.length, clusters: plan.clusters, ...(error ? { error } : {}) };
  if (removed.length > 0 || error) {
    deps.logger.info({
      target,
      removedFiles: removed.length,
      removedBytes,
      keptFiles: result.keptFiles,
      clusters: plan.clusters.map((c) => ({ systemIdentifier: c.systemIdentifier, rule: c.rule, keptFrom: c.keptFrom, neededBy: c.neededBy, removals: c.removals })),
    }, 'WAL retention removed archived WAL no retained base backup needs');
  } else {
    deps.logger.debug({ target, keptFiles: result.keptFiles, clusters: plan.clusters }, 'WAL retention: nothing to remove');
  }
  return result;
}

export interface WalOrphanSweepResult {
  readonly removed: readonly string[];
  /** Orphans still inside the grace (an upload may be committing them right now). */
  readonly kept: readonly string[];
}

/**
 * Removes WAL data objects no manifest claims, once older than the grace: a killed upload's
 * data (no manifest), or an upload of a file that was committed again since (a `.partial`'s
 * earlier version whose removal was interrupted). Manifests and unknown objects are left alone;
 * a file whose manifest is unreadable is left for an operator.
 */
export async function sweepWalOrphans(deps: Pick<WalRetentionDeps, 'archive'>, graceMs: number, now: Date): Promise<WalOrphanSweepResult> {
  const objects = await listWalObjects(deps.archive.backend);
  const removed: string[] = [];
  const kept: string[] = [];
  const old = (modifiedAt: Date) => now.getTime() - modifiedAt.getTime() > graceMs;
  for (const file of objects.values()) {
    // The common case, one committed data object: nothing to read.
    if (file.manifest !== undefined && file.data.length <= 1) continue;
    // The listing is a snapshot: read the manifest now, so an upload committed since is kept.
    let claimed: string | undefined;
    try {
      claimed = (await deps.archive.readManifest(file.target, file.systemIdentifier, file.file))?.data.key;
    } catch (error) {
      if (toErrorInfo(error).retryable) throw error;
      continue; // unreadable manifest: an operator's call
    }
    for (const data of file.data) {
      if (data.key === claimed) continue;
      if (!old(data.modifiedAt)) {
        kept.push(data.key);
        continue;
      }
      await deps.archive.backend.remove(data.key);
      removed.push(data.key);
    }
  }
  return { removed, kept };
}
