// backup.requested.files.<target>: the command decoded and checked, then one snapshot of the
// target (../backup/tree.ts); a failure is reported as the runner decides it (backup.failed).
import { TidemarkError, type RequestBackup } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { ack, reject, type Outcome } from '@tidemark/runtime';
import { backupFailed, requestIdOf, targetOfSubject, unknownTarget } from '@tidemark/agent';
import type { Context } from '../agent-deps.js';
import { announceSnapshot, backupTree, planBackup, treeArtifactId, type BackupDeps, type Plan } from '../backup/tree.js';

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });

  if (message.kind !== undefined && message.kind !== 'tree') {
    return reject(new TidemarkError('COMMAND_INVALID', `kind: the files agent makes "tree" snapshots; "${message.kind}" is not one (leave kind out)`));
  }
  const target = findTarget(deps.config, 'files', targetName);
  if (!target) return unknownTarget(deps.config, 'files', targetName);
  const artifactId = treeArtifactId(requestId, ctx.storedAt);
  const failure = { engine: 'files' as const, target: targetName, requestId, kind: 'tree' as const, artifactId };
  const jobCtx = { ...ctx, logger: log.child({ artifactId }) };

  let plan: Plan;
  try {
    const existing = await deps.store.readManifest('files', targetName, artifactId);
    if (existing) {
      jobCtx.logger.info('snapshot already committed, announcing it again');
      await announceSnapshot(existing, deps);
      return ack();
    }
    plan = planBackup(message, target, requestId, deps, ctx);
    const manifest = await backupTree(plan, deps, jobCtx);
    await announceSnapshot(manifest, deps);
    const facts = manifest.source as { files?: number; newStoredBytes?: number; problemsCount?: number };
    jobCtx.logger.info({ files: facts.files, newStoredBytes: facts.newStoredBytes, problems: facts.problemsCount, treeBytes: manifest.data.storedBytes }, 'backup completed');
    return ack();
  } catch (error) {
    // Shutdown or a stall: the runner hands the command back or retries it with the abort's reason.
    return backupFailed(ctx.signal.aborted ? ctx.signal.reason : error, failure, deps, jobCtx.logger);
  }
}
