// backup.requested.pg.<target>: a consistent pg_dump streamed through the pipeline into storage,
// committed by its manifest. Redeliveries of one command map to one artifact id, so a command
// whose artifact is already committed only re-announces it.
import type { Readable } from 'node:stream';
import {
  BackupStarted, MANIFEST_VERSION, TidemarkError, subjects, type ArtifactKind, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, findTarget, type Target } from '@tidemark/config';
import { newArtifactId } from '@tidemark/storage';
import { defaultCompression, encodeStream, type KeyRing } from '@tidemark/pipeline';
import { ack, nakWithDelay, type Outcome } from '@tidemark/runtime';
import {
  announceArtifact, backupFailed, eventScope, requestIdOf, settleAll, targetOfSubject, type AgentContext as Context,
} from '@tidemark/service';
import type { AgentDeps } from './common.js';

export const PG_DUMP_FORMAT = 'pg_dump-custom';

export interface BackupDeps extends AgentDeps {
  /** How often progress is reported to the consumer while pg_dump runs (default 5 s). */
  readonly progressIntervalMs?: number;
}

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'logical';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const artifactId = newArtifactId(requestId, ctx.storedAt);
  const log = ctx.logger.child({ target: targetName, requestId, artifactId });
  const scope = eventScope('pg', targetName, requestId);

  const failed = (error: unknown): Promise<Outcome> => backupFailed(error, { engine: 'pg', target: targetName, requestId, kind, artifactId }, deps, ctx, log);

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
    await announceArtifact('pg', existing, deps);
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
  await announceArtifact('pg', manifest, deps);
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
