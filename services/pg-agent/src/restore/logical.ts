// A logical restore: a committed pg_dump decoded and pg_restore'd into a database.
// Over an existing database the restore goes to a temporary database first; only when that
// succeeded is the old one moved aside (kept as <db>_pre_restore_<ts>) and the new one renamed
// into place. A failed restore drops the temporary database and leaves the original untouched.
// A finished restore marks its database (COMMENT ON DATABASE) with the request before it is moved
// into place: a redelivered command whose announcement was lost (nats down, the agent gone) finds
// it and announces it again, instead of restoring twice or failing on the database it made.
import { TidemarkError, type Manifest, type RequestRestore } from '@tidemark/contracts';
import type { Target } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { derivedDatabaseName, restoreArtifact, type PgCluster } from '@tidemark/pg';
import { compactTimestamp, pickArtifactOf, publishRestoreStarted, type AgentContext as Context, type RestoreRun } from '@tidemark/agent';
import { postgresOf, type AgentDeps } from '../agent-deps.js';
import type { RestoreProgress } from './request.js';

/**
 * The artifact to restore logically: the named one, else the newest logical backup that passed
 * verification, else the newest logical backup (base backups are restored with pointInTime).
 */
export const pickArtifact = (store: ArtifactStore, target: string, artifactId: string | undefined): Promise<Manifest> =>
  pickArtifactOf(store, 'pg', target, artifactId, { keep: (manifest) => manifest.kind === 'logical', what: `pg target "${target}" (logical backups)` });

const RESTORE_MARK = 'tidemark restore ';

interface RestoreMark {
  readonly requestId: string;
  readonly artifactId: string;
  readonly previousDatabaseKeptAs?: string | undefined;
}

const restoreMark = (mark: RestoreMark): string => `${RESTORE_MARK}${JSON.stringify(mark)}`;

/** The mark of a restore of `requestId` that finished into `database`, if there is one. */
async function finishedRestoreOf(cluster: PgCluster, database: string, requestId: string): Promise<RestoreMark | undefined> {
  const comment = await cluster.databaseComment(database);
  if (!comment?.startsWith(RESTORE_MARK)) return undefined;
  try {
    const mark = JSON.parse(comment.slice(RESTORE_MARK.length)) as Partial<RestoreMark>;
    return mark.requestId === requestId && typeof mark.artifactId === 'string' ? (mark as RestoreMark) : undefined;
  } catch {
    return undefined; // someone else's comment
  }
}

export interface RestoredDatabase {
  readonly artifactId: string;
  readonly database: string;
  readonly startedAt: Date;
  readonly previousDatabaseKeptAs: string | undefined;
}

/** Restores the command's artifact into its database (restore.started on the way); throws what stopped it. */
export async function restoreDatabase(
  message: RequestRestore, target: Target, run: RestoreRun, progress: RestoreProgress, deps: AgentDeps, ctx: Context,
): Promise<RestoredDatabase> {
  const log = ctx.logger;
  const cluster = deps.clusterFor(target);
  const intoDefault = message.intoDatabase === undefined;
  const into = message.intoDatabase ?? derivedDatabaseName(postgresOf(target).database, `_restore_${compactTimestamp(ctx.storedAt)}`);
  progress.database = into;

  const startedAt = deps.clock();
  const finished = await finishedRestoreOf(cluster, into, run.requestId);
  if (finished) {
    log.info({ artifactId: finished.artifactId, database: into }, 'restore already finished by an earlier delivery, announcing it again');
    return { artifactId: finished.artifactId, database: into, startedAt, previousDatabaseKeptAs: finished.previousDatabaseKeptAs };
  }
  const manifest = await pickArtifact(deps.store, target.name, message.artifactId);
  progress.artifactId = manifest.id;
  let exists = await cluster.databaseExists(into);
  if (exists && intoDefault) {
    // The default name derives from this command, so the database is a leftover of an
    // interrupted earlier attempt of this very restore.
    log.warn({ database: into }, 'dropping the leftover of an interrupted attempt');
    await cluster.dropDatabase(into);
    exists = false;
  }
  if (exists && !message.overwrite) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `database ${into} exists; restore into another database or set overwrite: true (the old one is kept as ${into}_pre_restore_<time>)`);
  }
  await publishRestoreStarted(run, { artifactId: manifest.id, database: into, startedAt }, deps, ctx);
  log.info({ artifactId: manifest.id, database: into, overwrite: exists }, 'restore started');

  const stamp = compactTimestamp(deps.clock());
  const scratch = exists ? derivedDatabaseName(into, `_restoring_${stamp}`) : into;
  const keptAs = exists ? derivedDatabaseName(into, `_pre_restore_${stamp}`) : undefined;
  await cluster.createDatabase(scratch);
  try {
    await restoreArtifact(cluster, scratch, manifest, deps, ctx);
    await cluster.setDatabaseComment(scratch, restoreMark({ requestId: run.requestId, artifactId: manifest.id, previousDatabaseKeptAs: keptAs }));
  } catch (error) {
    // The rollback path: nothing but the scratch database was touched.
    await cluster.dropDatabase(scratch).catch((dropError: unknown) => log.error({ err: dropError, database: scratch }, 'could not drop the failed restore database'));
    throw error;
  }
  if (keptAs !== undefined) {
    await cluster.renameDatabase(into, keptAs);
    try {
      await cluster.renameDatabase(scratch, into);
    } catch (error) {
      await cluster.renameDatabase(keptAs, into).catch((undoError: unknown) => log.error({ err: undoError }, 'could not move the original database back'));
      throw error;
    }
  }
  return { artifactId: manifest.id, database: into, startedAt, previousDatabaseKeptAs: keptAs };
}
