// kind "base": a physical base backup of the target's cluster (pg_basebackup, one tar with the
// WAL it needs and PostgreSQL's backup_manifest), throttled per target, with the data-level facts
// of the target's database for the verifier (see @tidemark/pg base-facts.ts). Stored and
// committed exactly like a logical backup (store-artifact.ts).
import type { Target } from '@tidemark/config';
import { BASE_BACKUP_FORMAT, baseBackupArgs, startPgBaseBackup, type BaseBackupThrottle, type PgBaseBackupOptions, type PgBaseBackupSession } from '@tidemark/pg';
import type { AgentContext as Context } from '@tidemark/agent';
import type { ArtifactPlan, ArtifactSource } from './store-artifact.js';

export const PG_BASEBACKUP_FORMAT = BASE_BACKUP_FORMAT;

/** Starts a base backup of a target's cluster (a port, so tests can pass their own environment). */
export type BaseBackupPort = (target: Target, options: PgBaseBackupOptions) => Promise<PgBaseBackupSession>;

export const defaultBaseBackups: BaseBackupPort = (target, options) => startPgBaseBackup(target.postgres!, options);

/** The target's throttle settings; CONFIG_INVALID for settings pg_basebackup cannot honour. */
export function baseBackupThrottleOf(target: Target): BaseBackupThrottle {
  const settings = target.baseBackup;
  const throttle: BaseBackupThrottle = {
    ...(settings?.maxRateKbps !== undefined ? { maxRateKbps: settings.maxRateKbps } : {}),
    ...(settings?.nice ? { nice: settings.nice } : {}),
    ...(settings?.serverCompression ? { serverCompression: settings.serverCompression } : {}),
    ...(settings?.serverCompressionWorkers !== undefined ? { serverCompressionWorkers: settings.serverCompressionWorkers } : {}),
    ...(settings?.checkpoint ? { checkpoint: settings.checkpoint } : {}),
  };
  baseBackupArgs({ label: 'check', ...throttle });
  return throttle;
}

export async function startBaseBackupSource(
  target: Target,
  plan: Pick<ArtifactPlan, 'artifactId'>,
  deps: { readonly baseBackups?: BaseBackupPort | undefined; readonly clock: () => Date },
  ctx: Context,
): Promise<ArtifactSource> {
  const session = await (deps.baseBackups ?? defaultBaseBackups)(target, {
    label: `tidemark ${plan.artifactId}`,
    ...baseBackupThrottleOf(target),
    databaseFacts: { tableChecksums: target.baseBackup?.tableChecksums ?? false },
    signal: ctx.signal,
    clock: deps.clock,
  });
  ctx.logger.debug({ artifactId: plan.artifactId, pid: session.pid }, 'pg_basebackup started');
  return {
    output: session.output,
    facts: session.source as unknown as Promise<Record<string, unknown>>,
    progress: () => session.progress(),
    abort: (reason) => session.abort(reason),
    finished: session.finished,
  };
}
