// restore.requested.qdrant.<target>: the command decoded, the artifact restored into a collection
// (../restore/collection.ts), then restore.completed; a failure is reported as the runner decides
// it (restore.failed once it is final).
import type { RequestRestore } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { ack, type Outcome } from '@tidemark/runtime';
import { publishRestoreCompleted, requestIdOf, restoreFailed, targetOfSubject, unknownTarget } from '@tidemark/agent';
import type { Context } from '../agent-deps.js';
import { restoreCollection, type RestoreDeps, type RestoredCollection, type RestoreProgress } from '../restore/collection.js';

export async function handleRestoreRequested(message: RequestRestore, deps: RestoreDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });
  const run = { engine: 'qdrant' as const, target: targetName, requestId };

  const target = findTarget(deps.config, 'qdrant', targetName);
  if (!target) return unknownTarget(deps.config, 'qdrant', targetName);

  const progress: RestoreProgress = {};
  let restored: RestoredCollection;
  try {
    restored = await restoreCollection(message, target, run, progress, deps, { ...ctx, logger: log });
  } catch (error) {
    const { artifactId, collection } = progress;
    return restoreFailed(error, { ...run, artifactId, database: collection, logFields: { artifactId, collection } }, deps, log);
  }

  const { artifactId, collection, points, previousKeptAs, promotion, startedAt } = restored;
  await publishRestoreCompleted(run, { artifactId, database: collection, startedAt, previousDatabaseKeptAs: previousKeptAs }, deps);
  log.info({ artifactId, collection, points, previousKeptAs, promotion }, 'restore completed');
  return ack();
}
