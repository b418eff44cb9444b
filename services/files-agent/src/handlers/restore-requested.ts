// restore.requested.files.<target>: the command decoded, the snapshot restored (../restore/tree.ts),
// then restore.completed with what was written; a failure is reported as the runner decides it
// (restore.failed once it is final).
import type { RequestRestore } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { ack, type Outcome } from '@tidemark/runtime';
import { publishRestoreCompleted, requestIdOf, restoreFailed, targetOfSubject, unknownTarget } from '@tidemark/agent';
import type { Context } from '../agent-deps.js';
import { restoreTree, type RestoreDeps, type RestoredTree, type RestoreProgress } from '../restore/tree.js';

export async function handleRestoreRequested(message: RequestRestore, deps: RestoreDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });
  const run = { engine: 'files' as const, target: targetName, requestId };

  const target = findTarget(deps.config, 'files', targetName);
  if (!target) return unknownTarget(deps.config, 'files', targetName);

  const progress: RestoreProgress = {};
  let restored: RestoredTree;
  try {
    restored = await restoreTree(message, target, run, progress, deps, { ...ctx, logger: log });
  } catch (error) {
    const { artifactId, into } = progress;
    return restoreFailed(ctx.signal.aborted ? ctx.signal.reason : error, { ...run, artifactId, database: into, logFields: { artifactId, into } }, deps, log);
  }

  const { artifactId, into, startedAt, files } = restored;
  await publishRestoreCompleted(run, { artifactId, database: into, startedAt, files }, deps);
  log.info({ artifactId, into, ...files }, 'restore completed');
  return ack();
}
