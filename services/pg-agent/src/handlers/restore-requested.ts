// restore.requested.pg.<target>: decode a committed artifact and pg_restore it into a database.
// Over an existing database the restore goes to a temporary database first; only when that
// succeeded is the old one moved aside (kept as <db>_pre_restore_<ts>) and the new one renamed
// into place. A failed restore drops the temporary database and leaves the original untouched.
import {
  RestoreCompleted, RestoreFailed, RestoreStarted, SCHEMA_VERSION, TidemarkError, subjects, type Manifest, type RequestRestore,
} from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { ack, nakWithDelay, term, type HandlerContext, type Outcome } from '@tidemark/runtime';
import { derivedDatabaseName, restoreArtifact } from '@tidemark/pg';
import { compactTimestamp, errorInfoOf, requestIdOf, retryDelayMs, targetOfSubject, type AgentDeps } from './common.js';

export type RestoreDeps = AgentDeps;

type Context = Pick<HandlerContext, 'subject' | 'attempt' | 'maxDeliver' | 'streamSequence' | 'storedAt' | 'working' | 'signal' | 'logger'>;

/** The artifact to restore: the named one, else the newest that passed verification, else the newest. */
export async function pickArtifact(store: ArtifactStore, target: string, artifactId: string | undefined): Promise<Manifest> {
  if (artifactId !== undefined) {
    const named = await store.readManifest('pg', target, artifactId);
    if (!named) throw new TidemarkError('ARTIFACT_NOT_FOUND', `artifact ${artifactId} of pg target "${target}" is not committed; list artifacts with the catalog`);
    return named;
  }
  const manifests = await store.listManifests({ engine: 'pg', target });
  for (const manifest of manifests) {
    const verification = await store.readVerification(manifest);
    if (verification?.status === 'passed') return manifest;
  }
  const newest = manifests[0];
  if (!newest) throw new TidemarkError('ARTIFACT_NOT_FOUND', `pg target "${target}" has no committed artifact to restore; take a backup first`);
  return newest;
}

export async function handleRestoreRequested(message: RequestRestore, deps: RestoreDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });
  const scope = { schemaVersion: SCHEMA_VERSION, engine: 'pg' as const, target: targetName, requestId };
  const at = () => deps.clock().toISOString();
  let artifactId: string | undefined;
  let database: string | undefined;

  const failed = async (error: unknown): Promise<Outcome> => {
    const info = errorInfoOf(error);
    const final = !info.retryable || ctx.attempt >= ctx.maxDeliver;
    if (final) {
      await deps.publisher.publish(
        subjects.restoreFailed('pg', targetName),
        RestoreFailed,
        { ...scope, occurredAt: at(), ...(artifactId ? { artifactId } : {}), ...(database ? { database } : {}), error: info },
        `restore-failed:${requestId}`,
      );
      log.error({ err: info, artifactId, database }, 'restore failed');
      return term(`${info.code}: ${info.message}`);
    }
    log.warn({ err: info, artifactId, database }, 'restore failed, will retry');
    return nakWithDelay(retryDelayMs(ctx.attempt));
  };

  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return failed(new TidemarkError('TARGET_UNKNOWN', `no pg target named "${targetName}" is configured; add it to tidemark.yaml`));
  if (!target.postgres) return failed(new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no postgres connection`));
  const cluster = deps.clusterFor(target);
  const intoDefault = message.intoDatabase === undefined;
  const into = message.intoDatabase ?? derivedDatabaseName(target.postgres.database, `_restore_${compactTimestamp(ctx.storedAt)}`);
  database = into;

  const startedAt = deps.clock();
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
    await deps.publisher.publish(
      subjects.restoreStarted('pg', targetName),
      RestoreStarted,
      { ...scope, occurredAt: startedAt.toISOString(), artifactId: manifest.id, database: into, agentId: deps.agent.id },
      `restore-started:${requestId}:${ctx.attempt}`,
    );
    log.info({ artifactId: manifest.id, database: into, overwrite: exists }, 'restore started');

    const stamp = compactTimestamp(deps.clock());
    const scratch = exists ? derivedDatabaseName(into, `_restoring_${stamp}`) : into;
    await cluster.createDatabase(scratch);
    try {
      await restoreArtifact(cluster, scratch, manifest, deps, ctx);
    } catch (error) {
      // The rollback path: nothing but the scratch database was touched.
      await cluster.dropDatabase(scratch).catch((dropError: unknown) => log.error({ err: dropError, database: scratch }, 'could not drop the failed restore database'));
      throw error;
    }
    if (exists) {
      previousDatabaseKeptAs = derivedDatabaseName(into, `_pre_restore_${stamp}`);
      await cluster.renameDatabase(into, previousDatabaseKeptAs);
      try {
        await cluster.renameDatabase(scratch, into);
      } catch (error) {
        await cluster.renameDatabase(previousDatabaseKeptAs, into).catch((undoError: unknown) => log.error({ err: undoError }, 'could not move the original database back'));
        throw error;
      }
    }
  } catch (error) {
    if (ctx.signal.aborted) {
      log.warn('restore interrupted by shutdown; handing it back');
      return nakWithDelay(0);
    }
    return failed(error);
  }

  await deps.publisher.publish(
    subjects.restoreCompleted('pg', targetName),
    RestoreCompleted,
    {
      ...scope,
      occurredAt: at(),
      artifactId: artifactId!,
      database: into,
      durationMs: Math.max(0, deps.clock().getTime() - startedAt.getTime()),
      ...(previousDatabaseKeptAs ? { previousDatabaseKeptAs } : {}),
    },
    `restore-completed:${requestId}`,
  );
  log.info({ artifactId, database: into, previousDatabaseKeptAs }, 'restore completed');
  return ack();
}
