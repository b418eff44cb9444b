import { ArtifactPruned, SCHEMA_VERSION, messageIds, subjects, toErrorInfo, type ErrorInfo } from '@tidemark/contracts';
import type { ArtifactStore, OrphanSweepResult, WalArchive } from '@tidemark/storage';
import type { EventPublisher, Logger } from '@tidemark/runtime';
import type { Catalog, CatalogRecord } from '../catalog/catalog.js';
import { explainRetention, type PlanOptions, type RetentionPolicy } from './plan.js';
import { pruneWal, sweepWalOrphans, type WalOrphanSweepResult, type WalRetentionResult } from './wal-run.js';

export interface RetentionDeps {
  readonly catalog: Catalog;
  readonly store: Pick<ArtifactStore, 'remove' | 'sweepOrphans'>;
  readonly publisher: EventPublisher;
  readonly policies: ReadonlyMap<string, RetentionPolicy>;
  readonly orphanGraceMinutes: number;
  readonly logger: Logger;
  readonly now?: () => Date;
  readonly planOptions?: PlanOptions;
  /** The pg WAL archive; without it WAL is neither pruned nor swept. */
  readonly walArchive?: Pick<WalArchive, 'backend' | 'remove' | 'readManifest'>;
}

export interface RetentionResult {
  readonly pruned: ReadonlyArray<{ readonly artifactId: string; readonly engine: string; readonly target: string; readonly reason: string }>;
  readonly failed: ReadonlyArray<{ readonly artifactId: string; readonly error: ErrorInfo }>;
  /** Every artifact of a target with a policy that stays, with every rule that keeps it. */
  readonly kept: ReadonlyArray<{ readonly artifactId: string; readonly engine: string; readonly target: string; readonly reasons: readonly string[] }>;
  readonly orphans: OrphanSweepResult | { readonly error: ErrorInfo };
  /** Per pg target with a policy and archived WAL. */
  readonly wal: readonly WalRetentionResult[];
  readonly walOrphans: WalOrphanSweepResult | { readonly error: ErrorInfo } | undefined;
}

/**
 * One retention pass: re-reads the bucket (so verification states are current), prunes what the
 * planner chooses (manifest first, through ArtifactStore.remove), announces each with
 * ArtifactPruned (msgId `pruned:<id>`, so a repeated pass is de-duplicated), then removes the
 * archived WAL no retained base backup needs any more (after the base backups, never before),
 * then sweeps orphans of both. One artifact's or target's failure does not stop the pass.
 */
export async function runRetention(deps: RetentionDeps): Promise<RetentionResult> {
  const now = deps.now?.() ?? new Date();
  await deps.catalog.rebuild();
  const records = deps.catalog.select();
  const byEntry = new Map<object, CatalogRecord>(records.map((r) => [r.entry, r]));
  const verdicts = explainRetention(records.map((r) => r.entry), deps.policies, now, deps.planOptions);
  const plan = verdicts.flatMap((v) => (v.keep ? [] : [{ entry: v.entry, reason: v.reasons[0] ?? 'no rule keeps it' }]));
  const kept = verdicts.filter((v) => v.keep).map((v) => ({ artifactId: v.entry.artifactId, engine: v.entry.engine, target: v.entry.target, reasons: v.reasons }));
  if (kept.length > 0) deps.logger.debug({ kept }, 'retention: artifacts kept and why');

  const pruned: Array<RetentionResult['pruned'][number]> = [];
  const failed: Array<RetentionResult['failed'][number]> = [];
  for (const { entry, reason } of plan) {
    const record = byEntry.get(entry);
    if (!record) continue;
    const { manifest } = record;
    try {
      await deps.store.remove(manifest);
      deps.catalog.forget(manifest.engine, manifest.target, manifest.id);
      const event: ArtifactPruned = {
        schemaVersion: SCHEMA_VERSION,
        engine: manifest.engine,
        target: manifest.target,
        // The artifact's own request: the event ends that request's history.
        requestId: manifest.requestId,
        occurredAt: new Date().toISOString(),
        artifactId: manifest.id,
        reason,
      };
      await deps.publisher.publish(subjects.artifactPruned(manifest.engine, manifest.target), ArtifactPruned, event, messageIds.artifactPruned(manifest.id));
      deps.logger.info({ artifactId: manifest.id, engine: manifest.engine, target: manifest.target, reason }, 'artifact pruned');
      pruned.push({ artifactId: manifest.id, engine: manifest.engine, target: manifest.target, reason });
    } catch (error) {
      const info = toErrorInfo(error);
      deps.logger.error({ artifactId: manifest.id, error: info }, 'pruning an artifact failed; the next pass retries');
      failed.push({ artifactId: manifest.id, error: info });
    }
  }

  const wal: WalRetentionResult[] = [];
  if (deps.walArchive) {
    for (const [key, policy] of deps.policies) {
      if (!key.startsWith('pg/')) continue;
      const target = key.slice('pg/'.length);
      try {
        wal.push(await pruneWal(target, policy.maxAgeDays, deps.orphanGraceMinutes * 60_000, { archive: deps.walArchive, catalog: deps.catalog, logger: deps.logger }, now));
      } catch (error) {
        const info = toErrorInfo(error);
        deps.logger.error({ target, error: info }, 'WAL retention failed for a target; the next pass retries');
        wal.push({ target, removed: [], removedBytes: 0, keptFiles: 0, clusters: [], error: info });
      }
    }
  }

  let orphans: RetentionResult['orphans'];
  try {
    orphans = await deps.store.sweepOrphans(deps.orphanGraceMinutes * 60_000, deps.now?.() ?? new Date());
    if (orphans.removed.length > 0) deps.logger.info({ removed: orphans.removed, keptYoung: orphans.kept.length }, 'orphaned data objects removed');
  } catch (error) {
    orphans = { error: toErrorInfo(error) };
    deps.logger.error({ error: orphans.error }, 'orphan sweep failed; the next pass retries');
  }
  let walOrphans: RetentionResult['walOrphans'];
  if (deps.walArchive) {
    try {
      walOrphans = await sweepWalOrphans({ archive: deps.walArchive }, deps.orphanGraceMinutes * 60_000, deps.now?.() ?? new Date());
      if (walOrphans.removed.length > 0) deps.logger.info({ removed: walOrphans.removed, keptYoung: walOrphans.kept.length }, 'orphaned WAL data objects removed');
    } catch (error) {
      walOrphans = { error: toErrorInfo(error) };
      deps.logger.error({ error: walOrphans.error }, 'WAL orphan sweep failed; the next pass retries');
    }
  }
  return { pruned, failed, kept, orphans, wal, walOrphans };
}
