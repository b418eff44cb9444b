// backup.requested.pg.<target>: a consistent pg_dump streamed through the pipeline into storage,
// committed by its manifest. Redeliveries of one command map to one artifact id, so a command
// whose artifact is already committed only re-announces it.
import type { Readable } from 'node:stream';
import {
  ArtifactStored, BackupCompleted, BackupFailed, BackupStarted, MANIFEST_VERSION, SCHEMA_VERSION, TidemarkError, subjects,
  type ArtifactKind, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, findTarget, type Target } from '@tidemark/config';
import { artifactKeys, newArtifactId } from '@tidemark/storage';
import { defaultCompression, encodeStream, type KeyRing } from '@tidemark/pipeline';
import { ack, nakWithDelay, term, type HandlerContext, type Outcome } from '@tidemark/runtime';
import { errorInfoOf, requestIdOf, retryDelayMs, targetOfSubject, type AgentDeps } from './common.js';

export const PG_DUMP_FORMAT = 'pg_dump-custom';

export interface BackupDeps extends AgentDeps {
  /** How often progress is reported to the consumer while pg_dump runs (default 5 s). */
  readonly progressIntervalMs?: number;
}

type Context = Pick<HandlerContext, 'subject' | 'attempt' | 'maxDeliver' | 'streamSequence' | 'storedAt' | 'working' | 'signal' | 'logger'>;

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'logical';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const artifactId = newArtifactId(requestId, ctx.storedAt);
  const log = ctx.logger.child({ target: targetName, requestId, artifactId });
  const scope = { schemaVersion: SCHEMA_VERSION, engine: 'pg' as const, target: targetName, requestId };
  const at = () => deps.clock().toISOString();

  const failed = async (error: unknown): Promise<Outcome> => {
    const info = errorInfoOf(error);
    const final = !info.retryable || ctx.attempt >= ctx.maxDeliver;
    await deps.publisher.publish(
      subjects.backupFailed('pg', targetName),
      BackupFailed,
      { ...scope, occurredAt: at(), kind, artifactId, error: info, attempt: ctx.attempt, final },
      `failed:${artifactId}:${ctx.attempt}`,
    );
    if (final) {
      log.error({ err: info }, 'backup failed');
      return term(`${info.code}: ${info.message}`);
    }
    log.warn({ err: info }, 'backup failed, will retry');
    return nakWithDelay(retryDelayMs(ctx.attempt));
  };

  if (kind !== 'logical') {
    return failed(new TidemarkError('COMMAND_INVALID', `the pg agent makes "logical" backups; kind "${kind}" is not supported yet`));
  }
  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return failed(new TidemarkError('TARGET_UNKNOWN', `no pg target named "${targetName}" is configured; add it to tidemark.yaml`));
  if (!target.postgres) return failed(new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no postgres connection`));

  let existing: Manifest | undefined;
  try {
    existing = await deps.store.readManifest('pg', targetName, artifactId);
  } catch (error) {
    return failed(error);
  }
  if (existing) {
    log.info('artifact already committed, announcing it again');
    await announce(existing, deps, at);
    return ack();
  }

  const settings = effectiveTarget(deps.config, target);
  let key;
  if (settings.encrypt) {
    key = deps.keys.current;
    if (!key) return failed(new TidemarkError('CONFIG_INVALID', `target "${targetName}" requires encryption but no key is configured; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`));
  }

  const startedAt = deps.clock();
  await deps.publisher.publish(
    subjects.backupStarted('pg', targetName),
    BackupStarted,
    { ...scope, occurredAt: startedAt.toISOString(), kind, artifactId, agentId: deps.agent.id, attempt: ctx.attempt },
    `started:${artifactId}:${ctx.attempt}`,
  );
  log.info({ source: deps.clusterFor(target).description, database: target.postgres.database }, 'backup started');

  let manifest: Manifest;
  try {
    manifest = await dumpAndStore(target, { artifactId, requestId, kind, startedAt, key, settings, message }, deps, ctx);
  } catch (error) {
    if (ctx.signal.aborted) {
      log.warn('backup interrupted by shutdown; handing it back');
      return nakWithDelay(0);
    }
    return failed(error);
  }
  await announce(manifest, deps, at);
  log.info({ storedBytes: manifest.data.storedBytes, rawBytes: manifest.data.rawBytes }, 'backup completed');
  return ack();
}

interface DumpPlan {
  readonly artifactId: string;
  readonly requestId: string;
  readonly kind: ArtifactKind;
  readonly startedAt: Date;
  readonly key: KeyRing['current'];
  readonly settings: ReturnType<typeof effectiveTarget>;
  readonly message: RequestBackup;
}

async function dumpAndStore(target: Target, plan: DumpPlan, deps: BackupDeps, ctx: Context): Promise<Manifest> {
  const conn = target.postgres!;
  const session = await deps.clusterFor(target).startDump(conn.database, { tableChecksums: target.tableChecksums, signal: ctx.signal });
  let lastReported = 0;
  const progress = setInterval(() => {
    const produced = session.bytesProduced();
    if (produced === lastReported) return;
    lastReported = produced;
    ctx.working();
    ctx.logger.debug({ artifactId: plan.artifactId, dumpedBytes: produced }, 'backup in progress');
  }, deps.progressIntervalMs ?? 5_000);
  try {
    const encoded = encodeStream(session.output, {
      compression: plan.settings.compression ?? defaultCompression(),
      ...(plan.settings.compressionLevel !== undefined ? { compressionLevel: plan.settings.compressionLevel } : {}),
      ...(plan.key ? { key: plan.key } : {}),
    });
    const [saved, summary, facts] = await settleAll([
      deps.store.saveData('pg', target.name, plan.artifactId, encoded.output as Readable),
      encoded.summary,
      session.facts,
      session.finished,
    ] as const);
    const manifest: Manifest = {
      manifestVersion: MANIFEST_VERSION,
      id: plan.artifactId,
      engine: 'pg',
      target: target.name,
      kind: plan.kind,
      format: PG_DUMP_FORMAT,
      requestId: plan.requestId,
      createdAt: plan.startedAt.toISOString(),
      finishedAt: deps.clock().toISOString(),
      agent: { id: deps.agent.id, version: deps.agent.version },
      source: facts as unknown as Record<string, unknown>,
      pipeline: summary.pipeline,
      data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
      verify: plan.message.verify ?? plan.settings.verify,
      ...(plan.message.groupId ? { groupId: plan.message.groupId } : {}),
      ...(plan.message.reason ? { reason: plan.message.reason } : {}),
    };
    await deps.store.commit(manifest);
    return manifest;
  } catch (error) {
    session.abort(error instanceof TidemarkError ? error : new TidemarkError('INTERNAL', (error as Error).message));
    // Return only once pg_dump is gone and the snapshot's session is closed.
    await session.finished.catch(() => undefined);
    throw error;
  } finally {
    clearInterval(progress);
  }
}

/** Like Promise.all, but every promise is observed, so a later rejection is never unhandled. */
async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  for (const p of promises) (p as Promise<unknown>).catch(() => undefined);
  return (await Promise.all(promises)) as unknown as T;
}

/** artifact.stored then backup.completed; msg ids make a repeat a no-op for the stream. */
async function announce(manifest: Manifest, deps: BackupDeps, at: () => string): Promise<void> {
  const scope = { schemaVersion: SCHEMA_VERSION, engine: 'pg' as const, target: manifest.target, requestId: manifest.requestId };
  await deps.publisher.publish(
    subjects.artifactStored('pg', manifest.target),
    ArtifactStored,
    {
      ...scope,
      occurredAt: manifest.finishedAt,
      kind: manifest.kind,
      artifactId: manifest.id,
      manifestKey: artifactKeys('pg', manifest.target, manifest.id).manifest,
      storedBytes: manifest.data.storedBytes,
      sha256: manifest.data.sha256,
      verify: manifest.verify,
    },
    `stored:${manifest.id}`,
  );
  await deps.publisher.publish(
    subjects.backupCompleted('pg', manifest.target),
    BackupCompleted,
    {
      ...scope,
      occurredAt: at(),
      kind: manifest.kind,
      artifactId: manifest.id,
      storedBytes: manifest.data.storedBytes,
      durationMs: Math.max(0, Date.parse(manifest.finishedAt) - Date.parse(manifest.createdAt)),
    },
    `completed:${manifest.id}`,
  );
}
