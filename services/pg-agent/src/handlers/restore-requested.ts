// restore.requested.pg.<target>: the command decoded, then a logical restore into a database
// (../restore/logical.ts) or, with pointInTime or naming a base backup, a physical one: a new data
// directory recovered to that point and started as a server (../restore/point-in-time.ts).
// A failure is reported as the runner decides it (restore.failed once it is final).
import type { RequestRestore } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { ack, type Outcome } from '@tidemark/runtime';
import {
  publishRestoreCompleted, requestIdOf, restoreFailed, targetOfSubject, unknownTarget, type AgentContext as Context,
} from '@tidemark/agent';
import type { AgentDeps } from '../agent-deps.js';
import { restoreDatabase, type RestoredDatabase } from '../restore/logical.js';
import { restorePointInTime } from '../restore/point-in-time.js';
import { isPhysicalRestore, type RestoreProgress } from '../restore/request.js';

export type RestoreDeps = AgentDeps;

export async function handleRestoreRequested(message: RequestRestore, deps: RestoreDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });
  const run = { engine: 'pg' as const, target: targetName, requestId };

  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return unknownTarget(deps.config, 'pg', targetName);

  const progress: RestoreProgress = {};
  let restored: RestoredDatabase;
  try {
    if (await isPhysicalRestore(message, deps.store, targetName)) {
      await restorePointInTime(message, target, run, progress, deps, { ...ctx, logger: log });
      return ack();
    }
    restored = await restoreDatabase(message, target, run, progress, deps, { ...ctx, logger: log });
  } catch (error) {
    // The runner settles it: shutdown hands the command back, a stall fails it with TIMEOUT.
    const { artifactId, database, dataDirectory } = progress;
    return restoreFailed(error, { ...run, artifactId, database: dataDirectory ?? database, logFields: { artifactId, database, dataDirectory } }, deps, log);
  }
  await publishRestoreCompleted(run, restored, deps);
  log.info({ artifactId: restored.artifactId, database: restored.database, previousDatabaseKeptAs: restored.previousDatabaseKeptAs }, 'restore completed');
  return ack();
}
