// A backup of one pg target: a consistent pg_dump (kind "logical") or a physical base backup (kind
// "base", see base-backup.ts) streamed through the pipeline into storage, committed by its manifest
// (store-artifact.ts). Redeliveries of one command map to one artifact id, so a command whose
// artifact is already committed only gets that artifact back.
import { BackupStarted, TidemarkError, messageIds, subjects, type Manifest, type RequestBackup } from '@tidemark/contracts';
import { effectiveTarget, type Target } from '@tidemark/config';
import { settleFirstCause } from '@tidemark/pipeline';
import { eventScope, type AgentContext as Context } from '@tidemark/agent';
import { postgresOf, type AgentDeps } from '../agent-deps.js';
import { PG_BASEBACKUP_FORMAT, baseBackupThrottleOf, startBaseBackupSource, type BaseBackupPort } from './base-backup.js';
import { storeArtifact, type ArtifactPlan, type ArtifactSource } from './store-artifact.js';

export const PG_DUMP_FORMAT = 'pg_dump-custom';

export interface BackupDeps extends AgentDeps {
  /** How often progress is reported to the consumer while pg_dump or pg_basebackup runs (default 5 s). */
  readonly progressIntervalMs?: number;
  /** Starts base backups of a target; the real one (startPgBaseBackup over process.env) by default. */
  readonly baseBackups?: BaseBackupPort;
}

export interface BackupRequest {
  readonly target: Target;
  readonly kind: 'logical' | 'base';
  readonly requestId: string;
  readonly artifactId: string;
  readonly message: RequestBackup;
}

/** The committed artifact; `repeated` when an earlier delivery of the command had committed it. */
export interface BackupTaken {
  readonly manifest: Manifest;
  readonly repeated: boolean;
}

/** Takes the backup and commits it (backup.started on the way); throws what stopped it. */
export async function takeBackup(request: BackupRequest, deps: BackupDeps, ctx: Context): Promise<BackupTaken> {
  const { target, kind, requestId, artifactId, message } = request;
  const postgres = postgresOf(target);
  // Settings pg_basebackup cannot honour fail before anything starts.
  if (kind === 'base') baseBackupThrottleOf(target);

  const existing = await deps.store.readManifest('pg', target.name, artifactId);
  if (existing) return { manifest: existing, repeated: true };

  const settings = effectiveTarget(deps.config, target);
  let key;
  if (settings.encrypt) {
    key = deps.keys.current;
    if (!key) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" requires encryption but no key is configured; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`);
  }

  const startedAt = deps.clock();
  await deps.publisher.publish(
    subjects.backupStarted('pg', target.name),
    BackupStarted,
    { ...eventScope('pg', target.name, requestId), occurredAt: startedAt.toISOString(), kind, artifactId, agentId: deps.agent.id, attempt: ctx.attempt },
    messageIds.backupStarted(artifactId, ctx.attempt),
  );
  ctx.logger.info({ kind, source: deps.clusterFor(target).description, database: postgres.database }, 'backup started');

  const plan: ArtifactPlan = { artifactId, requestId, kind, format: kind === 'base' ? PG_BASEBACKUP_FORMAT : PG_DUMP_FORMAT, startedAt, key, settings, message };
  const source = kind === 'base' ? await startBaseBackupSource(target, plan, deps, ctx) : await startDumpSource(target, deps, ctx);
  return { manifest: await storeArtifact(target, plan, source, deps, ctx), repeated: false };
}

/** pg_dump in a snapshot, with the facts taken in that snapshot. */
async function startDumpSource(target: Target, deps: BackupDeps, ctx: Context): Promise<ArtifactSource> {
  const session = await deps.clusterFor(target).startDump(postgresOf(target).database, { tableChecksums: target.tableChecksums, signal: ctx.signal });
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
