// restore.requested.pg.<target>: decode a committed artifact and pg_restore it into a database.
// With pointInTime, or naming a base backup, the restore is physical instead: a new data directory
// recovered to that point and started as a server (../restore/point-in-time.ts).
// Over an existing database the restore goes to a temporary database first; only when that
// succeeded is the old one moved aside (kept as <db>_pre_restore_<ts>) and the new one renamed
// into place. A failed restore drops the temporary database and leaves the original untouched.
// A finished restore marks its database (COMMENT ON DATABASE) with the request before it is moved
// into place: a redelivered command whose announcement was lost (nats down, the agent gone) finds
// it and announces it again, instead of restoring twice or failing on the database it made.
import { TidemarkError, type Manifest, type RequestRestore } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { ack, type Outcome } from '@tidemark/runtime';
import { derivedDatabaseName, restoreArtifact, type PgCluster } from '@tidemark/pg';
import {
  compactTimestamp, pickArtifactOf, publishRestoreCompleted, publishRestoreStarted, requestIdOf, restoreFailed, targetOfSubject, unknownTarget, type AgentContext as Context,
} from '@tidemark/service';
import type { AgentDeps } from './common.js';
import { handlePointInTimeRestore } from '../restore/point-in-time.js';

export type RestoreDeps = AgentDeps;

/**
 * The artifact to restore logically: the named one, else the newest logical backup that passed
 * verification, else the newest logical backup (base backups are restored with pointInTime).
 */
export const pickArtifact = (store: ArtifactStore, target: string, artifactId: string | undefined): Promise<Manifest> =>
  pickArtifactOf(store, 'pg', target, artifactId, { keep: (manifest) => manifest.kind === 'logical', what: `pg target "${target}" (logical backups)` });

/** pointInTime, intoDirectory/intoPort or a named base backup ask for a physical restore. */
async function isPhysicalRestore(message: RequestRestore, store: ArtifactStore, target: string): Promise<boolean> {
  if (message.pointInTime !== undefined || message.intoDirectory !== undefined || message.intoPort !== undefined) return true;
  if (message.artifactId === undefined) return false;
  return (await store.readManifest('pg', target, message.artifactId))?.kind === 'base';
}

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

export async function handleRestoreRequested(message: RequestRestore, deps: RestoreDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });
  const run = { engine: 'pg' as const, target: targetName, requestId };
  let artifactId: string | undefined;
  let database: string | undefined;

  // The runner settles it: shutdown hands the command back, a stall fails it with TIMEOUT.
  const failed = (error: unknown): Outcome => restoreFailed(error, { ...run, artifactId, database, logFields: { artifactId, database } }, deps, log);

  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return unknownTarget(deps.config, 'pg', targetName);
  if (!target.postgres) return failed(new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no postgres connection`));
  let physical: boolean;
  try {
    physical = await isPhysicalRestore(message, deps.store, targetName);
  } catch (error) {
    return failed(error);
  }
  if (physical) return handlePointInTimeRestore(message, deps, ctx, target, run, log);
  const cluster = deps.clusterFor(target);
  const intoDefault = message.intoDatabase === undefined;
  const into = message.intoDatabase ?? derivedDatabaseName(target.postgres.database, `_restore_${compactTimestamp(ctx.storedAt)}`);
  database = into;

  const startedAt = deps.clock();
  let finished: RestoreMark | undefined;
  try {
    finished = await finishedRestoreOf(cluster, into, requestId);
  } catch (error) {
    return failed(error);
  }
  if (finished) {
    log.info({ artifactId: finished.artifactId, database: into }, 'restore already finished by an earlier delivery, announcing it again');
    await publishRestoreCompleted(run, { ...finished, database: into, startedAt }, deps);
    return ack();
  }

  let previousDatabaseKeptAs: string | undefined;
  try {
    const manifest = await pickArtifact(deps.store, targetName, message.artifactId);
    artifactId = manifest.id;
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
      await cluster.setDatabaseComment(scratch, restoreMark({ requestId, artifactId: manifest.id, previousDatabaseKeptAs: keptAs }));
    } catch (error) {
      // The rollback path: nothing but the scratch database was touched.
      await cluster.dropDatabase(scratch).catch((dropError: unknown) => log.error({ err: dropError, database: scratch }, 'could not drop the failed restore database'));
      throw error;
    }
    if (keptAs !== undefined) {
      previousDatabaseKeptAs = keptAs;
      await cluster.renameDatabase(into, previousDatabaseKeptAs);
      try {
        await cluster.renameDatabase(scratch, into);
      } catch (error) {
        await cluster.renameDatabase(previousDatabaseKeptAs, into).catch((undoError: unknown) => log.error({ err: undoError }, 'could not move the original database back'));
        throw error;
      }
    }
  } catch (error) {
    return failed(error);
  }

  await publishRestoreCompleted(run, { artifactId: artifactId!, database: into, startedAt, previousDatabaseKeptAs }, deps);
  log.info({ artifactId, database: into, previousDatabaseKeptAs }, 'restore completed');
  return ack();
}
