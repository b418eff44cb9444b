// backup.requested.pg.<target>: a consistent pg_dump (kind "logical", the default) or a physical
// base backup (kind "base", see base-backup.ts) streamed through the pipeline into storage,
// committed by its manifest (store-artifact.ts). Redeliveries of one command map to one artifact
// id, so a command whose artifact is already committed only re-announces it.
import {
  BackupStarted, TidemarkError, messageIds, subjects, type ArtifactKind, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, findTarget, type Target } from '@tidemark/config';
import { newArtifactId } from '@tidemark/storage';
import { ack, reject, type Outcome } from '@tidemark/runtime';
import {
  announceArtifact, backupFailed, eventScope, requestIdOf, targetOfSubject, unknownTarget, type AgentContext as Context,
} from '@tidemark/agent';
import { settleFirstCause } from '@tidemark/pipeline';
import type { AgentDeps } from './common.js';
import { PG_BASEBACKUP_FORMAT, baseBackupThrottleOf, startBaseBackupSource, type BaseBackupPort } from './base-backup.js';
import { storeArtifact, type ArtifactPlan, type ArtifactSource } from './store-artifact.js';

export const PG_DUMP_FORMAT = 'pg_dump-custom';

export interface BackupDeps extends AgentDeps {
  /** How often progress is reported to the consumer while pg_dump or pg_basebackup runs (default 5 s). */
  readonly progressIntervalMs?: number;
  /** Starts base backups of a target; the real one (startPgBaseBackup over process.env) by default. */
  readonly baseBackups?: BaseBackupPort;
}

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'logical';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const artifactId = newArtifactId(requestId, ctx.storedAt);
  const log = ctx.logger.child({ target: targetName, requestId, artifactId });
  const scope = eventScope('pg', targetName, requestId);

  // The runner settles it: shutdown hands the command back, a stall fails it with TIMEOUT.
  const failed = (error: unknown): Outcome => backupFailed(error, { engine: 'pg', target: targetName, requestId, kind, artifactId }, deps, log);

  if (kind !== 'logical' && kind !== 'base') {
    return reject(new TidemarkError('COMMAND_INVALID', `kind: the pg agent makes "logical" and "base" backups; "${kind}" is not one of them`));
  }
  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return unknownTarget(deps.config, 'pg', targetName);
  if (!target.postgres) return failed(new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no postgres connection`));
  if (kind === 'base') {
    // Settings pg_basebackup cannot honour fail before anything starts.
    try {
      baseBackupThrottleOf(target);
    } catch (error) {
      return failed(error);
    }
  }

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
    messageIds.backupStarted(artifactId, ctx.attempt),
  );
  log.info({ kind, source: deps.clusterFor(target).description, database: target.postgres.database }, 'backup started');

  let manifest: Manifest;
  try {
    const plan: ArtifactPlan = { artifactId, requestId, kind, format: kind === 'base' ? PG_BASEBACKUP_FORMAT : PG_DUMP_FORMAT, startedAt, key, settings, message };
    const source = kind === 'base' ? await startBaseBackupSource(target, plan, deps, ctx) : await startDumpSource(target, deps, ctx);
    manifest = await storeArtifact(target, plan, source, deps, ctx);
  } catch (error) {
    return failed(error);
  }
  await announceArtifact('pg', manifest, deps);
  log.info({ storedBytes: manifest.data.storedBytes, rawBytes: manifest.data.rawBytes }, 'backup completed');
  return ack();
}

/** pg_dump in a snapshot, with the facts taken in that snapshot. */
async function startDumpSource(target: Target, deps: BackupDeps, ctx: Context): Promise<ArtifactSource> {
  const session = await deps.clusterFor(target).startDump(target.postgres!.database, { tableChecksums: target.tableChecksums, signal: ctx.signal });
  // The dump counts as done only when pg_dump exited cleanly and the snapshot is closed.
  const facts = settleFirstCause([session.facts, session.finished] as const).then(([f]) => f as unknown as Record<string, unknown>);
  facts.catch(() => undefined);
  return {
    output: session.output,
    facts,
    progress: () => session.bytesProduced(),
    abort: (reason) => session.abort(reason),
    finished: session.finished.catch(() => undefined),
  };
}
