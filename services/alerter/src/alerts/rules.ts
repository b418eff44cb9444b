// Event → Alert. Pure: what deserves a page, how loud, and which repeats count as the same alert
// (the dedupe key). Summaries are sentences a person on call can act on.
import {
  messageIds, type Alert, type AlertKind, type BackupCompleted, type BackupFailed, type CommandRejected, type Engine, type RestoreFailed, type Severity,
  type VerifyFailed, type WalAlertKind, type WalProblem, type WalProblemKind,
} from '@tidemark/contracts';

export const SEVERITY_OF: Readonly<Record<AlertKind, Severity>> = {
  verify_failed: 'critical',
  backup_failed: 'critical',
  restore_failed: 'critical',
  backup_missed: 'critical',
  command_rejected: 'warning',
  // The backup is usable, but some paths in it are not what the source held: someone should look.
  backup_incomplete: 'warning',
  // Point-in-time recovery is broken past a gap or an unfollowed timeline.
  wal_gap: 'critical',
  wal_timeline: 'critical',
  // Archiving has stopped and stays stopped until someone frees the disk.
  wal_spool_full: 'critical',
  // The primary's disk fills up, or the RPO is exceeded: act soon.
  wal_slot_growth: 'warning',
  wal_lagging: 'warning',
};

const RANK: Readonly<Record<Severity, number>> = { info: 0, warning: 1, critical: 2 };

/** True when `severity` is at least `minimum` (critical ≥ warning ≥ info). */
export const atLeast = (severity: Severity, minimum: Severity): boolean => RANK[severity] >= RANK[minimum];

const MAX_SUMMARY = 2000;
const clip = (text: string): string => (text.length <= MAX_SUMMARY ? text : `${text.slice(0, MAX_SUMMARY - 1)}…`);
/** Ends `text` with a full stop unless it already ends a sentence. */
const sentence = (text: string): string => (/[.!?]$/.test(text.trimEnd()) ? text.trimEnd() : `${text.trimEnd()}.`);

export function verifyFailedAlert(event: VerifyFailed): Alert {
  const failedChecks = event.checks.filter((c) => !c.ok).map((c) => c.name);
  const which = failedChecks.length > 0 ? ` (failed checks: ${failedChecks.join(', ')})` : '';
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF.verify_failed,
    kind: 'verify_failed',
    summary: clip(`Backup ${event.artifactId} of ${event.engine}/${event.target} failed verification: ${event.error.message}${which}. Do not rely on it for recovery; check the verifier log and take a new backup.`),
    engine: event.engine,
    target: event.target,
    artifactId: event.artifactId,
    requestId: event.requestId,
    error: event.error,
    dedupeKey: messageIds.verifyFailedAlert(event.engine, event.target, event.artifactId),
    details: { failedChecks },
  };
}

/**
 * Only a final failure alerts; earlier attempts are retries still in progress. The agent's
 * message of a final failure already says how many attempts were made and what to do.
 */
export function backupFailedAlert(event: BackupFailed): Alert | undefined {
  if (!event.final) return undefined;
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF.backup_failed,
    kind: 'backup_failed',
    summary: clip(sentence(`Backup of ${event.engine}/${event.target} failed (${event.error.code}): ${event.error.message}`)),
    engine: event.engine,
    target: event.target,
    ...(event.artifactId ? { artifactId: event.artifactId } : {}),
    requestId: event.requestId,
    error: event.error,
    dedupeKey: messageIds.backupFailedAlert(event.engine, event.target, event.requestId),
  };
}

/**
 * What a restore's `database` field names, in its engine's words: a database, or for a
 * point-in-time restore the data directory (an absolute path); a collection; a directory or bucket
 * prefix, which speaks for itself.
 */
function restoredInto(engine: Engine, place: string): string {
  if (engine === 'pg') return `${place.startsWith('/') ? 'data directory' : 'database'} ${place}`;
  return engine === 'qdrant' ? `collection ${place}` : place;
}

export function restoreFailedAlert(event: RestoreFailed): Alert {
  const into = event.database ? ` into ${restoredInto(event.engine, event.database)}` : '';
  const from = event.artifactId ? ` from ${event.artifactId}` : '';
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF.restore_failed,
    kind: 'restore_failed',
    summary: clip(sentence(`Restore of ${event.engine}/${event.target}${from}${into} failed (${event.error.code}): ${event.error.message}`)),
    engine: event.engine,
    target: event.target,
    ...(event.artifactId ? { artifactId: event.artifactId } : {}),
    requestId: event.requestId,
    error: event.error,
    dedupeKey: messageIds.restoreFailedAlert(event.engine, event.target, event.requestId),
  };
}

/**
 * A backup committed, but some paths are not in it as the source held them (files: unreadable,
 * changed while read, a corrupt model blob). Not a failure: the rest is usable, so a warning that
 * names the target and the first paths with their problem.
 */
export function backupIncompleteAlert(event: BackupCompleted): Alert | undefined {
  const count = event.problemsCount ?? 0;
  if (count === 0) return undefined;
  const shown = (event.problems ?? []).slice(0, 5);
  const listed = shown.map((p) => `${JSON.stringify(p.path)} (${p.problem.replace(/_/g, ' ')}${p.detail ? `: ${p.detail}` : ''})`).join('; ');
  const more = count > shown.length ? `; and ${count - shown.length} more` : '';
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF.backup_incomplete,
    kind: 'backup_incomplete',
    summary: clip(
      `Backup ${event.artifactId} of ${event.engine}/${event.target} completed, but ${count} path${count === 1 ? ' was' : 's were'} not stored as the source held them: ${listed}${more}. `
        + `The rest of the backup is usable; fix the files (permissions, a corrupt blob, a writer during the backup) and take a new backup (tidemark backup ${event.engine} ${event.target}).`,
    ),
    engine: event.engine,
    target: event.target,
    artifactId: event.artifactId,
    requestId: event.requestId,
    dedupeKey: messageIds.backupIncompleteAlert(event.engine, event.target, event.artifactId),
    details: { problemsCount: count, problems: event.problems ?? [] },
  };
}

/** Repeats of the same problem on the same subject are one alert per dedupe window. */
export function commandRejectedAlert(event: CommandRejected): Alert {
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF.command_rejected,
    kind: 'command_rejected',
    summary: clip(`A command on ${event.subject} was rejected (${event.error.code}): ${event.error.message}. Fix the sender and publish it again.`),
    error: event.error,
    dedupeKey: messageIds.commandRejectedAlert(event.subject, event.error.code),
    details: { subject: event.subject, sizeBytes: event.sizeBytes, payloadPreview: event.payloadPreview },
  };
}

const WAL_ALERT_KIND: Readonly<Record<WalProblemKind, WalAlertKind>> = {
  gap: 'wal_gap',
  timeline: 'wal_timeline',
  slot_growth: 'wal_slot_growth',
  lagging: 'wal_lagging',
  spool_full: 'wal_spool_full',
};

const mib = (bytes: number): string => `${Math.round(bytes / (1024 * 1024))} MiB`;

/**
 * A WAL archive problem (pg). The event's summary says what is wrong; the alert adds what it
 * means for recovery and what to do. The dedupe key names the problem itself (the first missing
 * file, the timeline), so a problem reported again every hour pages once per dedupe window,
 * while a new gap elsewhere pages at once.
 */
export function walProblemAlert(event: WalProblem): Alert {
  const kind = WAL_ALERT_KIND[event.problem];
  const scope = `${event.engine}/${event.target}`;
  const timeline = typeof event.details?.['timeline'] === 'number' ? event.details['timeline'] : undefined;
  let advice: string;
  let identity: string;
  switch (event.problem) {
    case 'gap':
      identity = event.missing?.[0] ?? '';
      advice = `Point-in-time recovery into or across the gap is impossible; moments before it stay recoverable from older base backups. `
        + `Take a new base backup now (tidemark backup ${event.engine} ${event.target} --kind base) so that moments from now on are recoverable, `
        + `and look in the pg-agent log for failed WAL uploads. Do not remove the base backups from before the gap until the new one is verified.`;
      break;
    case 'timeline':
      identity = timeline !== undefined ? `timeline-${timeline}` : (event.missing?.[0] ?? '');
      advice = `Recovery past the timeline switch is not possible from this archive. Check that the pg-agent streams from the current primary `
        + `(restart it after a failover or a point-in-time restore), then take a new base backup (tidemark backup ${event.engine} ${event.target} --kind base).`;
      break;
    case 'slot_growth':
      identity = typeof event.details?.['slot'] === 'string' ? event.details['slot'] : 'slot';
      advice = `The primary keeps this WAL on its disk until the slot advances${event.retainedBytes !== undefined && event.limitBytes !== undefined ? ` (${mib(event.retainedBytes)} held, limit ${mib(event.limitBytes)})` : ''}. `
        + `Check that the pg-agent's WAL receiver runs and reaches the server; drop the slot (pg_drop_replication_slot) only if WAL archiving for this target is given up.`;
      break;
    case 'lagging':
      identity = 'lag';
      advice = `Point-in-time recovery reaches only as far as the archive${event.lagSeconds !== undefined && event.limitSeconds !== undefined ? ` (${Math.round(event.lagSeconds)} s behind, limit ${Math.round(event.limitSeconds)} s)` : ''}: the recovery point objective is not met. `
        + `Check that the pg-agent and its WAL receiver run and that the storage backend accepts uploads.`;
      break;
    case 'spool_full':
      identity = 'spool';
      advice = `No WAL is archived until there is room again, so point-in-time recovery stops at the archive's end; the replication slot keeps the WAL on the primary meanwhile (its disk fills in turn). `
        + `Free space on ${typeof event.details?.['spoolDir'] === 'string' ? event.details['spoolDir'] : "the pg-agent's WAL spool (pg.workDir)"} or give pg.workDir a larger disk: archiving resumes by itself.`;
      break;
  }
  const summary = event.summary.replace(/[.\s]+$/, '');
  return {
    schemaVersion: 1,
    occurredAt: event.occurredAt,
    severity: SEVERITY_OF[kind],
    kind,
    summary: clip(`WAL archive of ${scope}: ${summary}. ${advice}`),
    engine: event.engine,
    target: event.target,
    dedupeKey: messageIds.walProblemAlert(kind, event.engine, event.target, event.systemIdentifier, identity),
    details: {
      problem: event.problem,
      ...(event.systemIdentifier !== undefined ? { systemIdentifier: event.systemIdentifier } : {}),
      ...(event.missing ? { missing: event.missing.slice(0, 10) } : {}),
      ...(event.missingCount !== undefined ? { missingCount: event.missingCount } : {}),
      ...(event.retainedBytes !== undefined ? { retainedBytes: event.retainedBytes } : {}),
      ...(event.limitBytes !== undefined ? { limitBytes: event.limitBytes } : {}),
      ...(event.lagSeconds !== undefined ? { lagSeconds: event.lagSeconds } : {}),
      ...(event.limitSeconds !== undefined ? { limitSeconds: event.limitSeconds } : {}),
      ...(event.details ? { event: event.details } : {}),
    },
  };
}

export interface MissedBackup {
  readonly engine: Engine;
  readonly target: string;
  /** The start of the window in which no successful backup arrived. */
  readonly windowStart: Date;
  readonly windowMs: number;
  readonly lastSuccess: Date | undefined;
  /** What counts as success for this target. */
  readonly evidence: 'verified' | 'completed';
  readonly now: Date;
}

export function backupMissedAlert(missed: MissedBackup): Alert {
  const window = humanDuration(missed.windowMs);
  const what = missed.evidence === 'verified' ? 'verified backup' : 'completed backup';
  const since = missed.lastSuccess
    ? `the last one was at ${missed.lastSuccess.toISOString()}`
    : `none has been seen since ${missed.windowStart.toISOString()}`;
  return {
    schemaVersion: 1,
    occurredAt: missed.now.toISOString(),
    severity: SEVERITY_OF.backup_missed,
    kind: 'backup_missed',
    summary: clip(`No ${what} of ${missed.engine}/${missed.target} within ${window}: ${since}. Check that the scheduler and the ${missed.engine} agent are running.`),
    engine: missed.engine,
    target: missed.target,
    dedupeKey: messageIds.backupMissedAlert(missed.engine, missed.target, missed.windowStart),
    details: { windowMinutes: Math.round(missed.windowMs / 60_000), lastSuccess: missed.lastSuccess?.toISOString() },
  };
}

export function humanDuration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 1) return `${Math.round(ms / 1000)} s`;
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.round(hours / 24)} days`;
}
