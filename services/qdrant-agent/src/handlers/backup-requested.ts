// backup.requested.qdrant.<target>: the command decoded and checked, the backup planned and each
// collection backed up (../backup/collections.ts); the command's outcome follows the collections'.
import { TidemarkError, type ArtifactKind, type RequestBackup } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { ack, failed, reject, retriesMayHelp, type Outcome } from '@tidemark/runtime';
import { backupFailed, requestIdOf, targetOfSubject, unknownTarget } from '@tidemark/agent';
import type { Context } from '../agent-deps.js';
import { backupCollection, planBackup, reportAll, type BackupDeps, type CollectionFailure, type Plan } from '../backup/collections.js';

const QDRANT_KINDS: readonly ArtifactKind[] = ['snapshot', 'export', 'incremental'];

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'snapshot';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });

  if (!QDRANT_KINDS.includes(kind)) {
    return reject(new TidemarkError('COMMAND_INVALID', `kind: the qdrant agent makes "snapshot", "export" and "incremental" backups; "${kind}" is not one of them`));
  }
  const target = findTarget(deps.config, 'qdrant', targetName);
  if (!target) return unknownTarget(deps.config, 'qdrant', targetName);
  let plan: Plan;
  try {
    plan = await planBackup(message, target, kind, requestId, deps);
  } catch (error) {
    // A failure before any collection is known: one backup.failed without an artifact id.
    return backupFailed(error, { engine: 'qdrant', target: targetName, requestId, kind }, deps, log);
  }

  const failures: CollectionFailure[] = [];
  for (const collection of plan.collections) {
    // Shutdown or a stall: the runner hands the command back or retries it; later collections wait for that.
    if (ctx.signal.aborted) break;
    const result = await backupCollection(collection, plan, deps, ctx);
    if (result !== 'done') failures.push(result);
  }
  if (ctx.signal.aborted) return failed(ctx.signal.reason, (decision) => reportAll(failures, decision));
  if (failures.length === 0) return ack();
  // A retryable failure of any collection retries the command: committed collections are only announced again.
  const decisive = failures.find((f) => retriesMayHelp(f.error)) ?? failures[0]!;
  return failed(decisive.error, (decision) => reportAll(failures, decision));
}
