// Every NATS subject Tidemark uses is built or parsed here, and nowhere else.

/** Datastore engines: PostgreSQL, Qdrant, and files (directories, S3 prefixes, Ollama model stores). */
export const ENGINES = ['pg', 'qdrant', 'files'] as const;
export type Engine = (typeof ENGINES)[number];

/** Target names become one subject token and one storage key segment, so they are kept plain. */
export const TARGET_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const TARGET_NAME_HINT = 'target names use lowercase letters, digits, "-" and "_" (at most 63, starting with a letter or digit)';

export const isEngine = (value: string): value is Engine => (ENGINES as readonly string[]).includes(value);
export const isTargetName = (value: string): boolean => TARGET_NAME_PATTERN.test(value);

export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const ALERT_KINDS = [
  'verify_failed', 'backup_failed', 'command_rejected', 'backup_missed', 'restore_failed',
  // The WAL archive: one kind per WalProblem (see messages.ts), so alert rules can route them.
  'wal_gap', 'wal_timeline', 'wal_slot_growth', 'wal_lagging', 'wal_spool_full',
  // A backup committed, but some paths could not be stored as they were (files: unreadable, changed while read, corrupt blobs).
  'backup_incomplete',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

const scoped = (family: string, action: string) => (engine: Engine, target: string) => `${family}.${action}.${engine}.${target}`;

export const subjects = {
  // commands (work-queue stream)
  backupRequested: scoped('backup', 'requested'),
  restoreRequested: scoped('restore', 'requested'),
  // events (limits stream, the audit history)
  backupStarted: scoped('backup', 'started'),
  backupCompleted: scoped('backup', 'completed'),
  backupFailed: scoped('backup', 'failed'),
  artifactStored: scoped('artifact', 'stored'),
  artifactPruned: scoped('artifact', 'pruned'),
  verifyPassed: scoped('verify', 'passed'),
  verifyFailed: scoped('verify', 'failed'),
  restoreStarted: scoped('restore', 'started'),
  restoreCompleted: scoped('restore', 'completed'),
  restoreFailed: scoped('restore', 'failed'),
  // the continuous WAL archive (its own stream: one event per segment and partial upload)
  walArchived: scoped('wal', 'archived'),
  walProblem: scoped('wal', 'problem'),
  /** Progress of a long job (core NATS, not persisted). */
  progress: (action: 'backup' | 'restore' | 'verify', engine: Engine, target: string) => `progress.${action}.${engine}.${target}`,
  alert: (severity: Severity, kind: AlertKind) => `alert.${severity}.${kind}`,
  commandRejected: () => 'command.rejected',
  // core request/reply (not persisted)
  catalogList: () => 'catalog.list',
  catalogDescribe: () => 'catalog.describe',
  /** files: the entries of one snapshot (storage service). */
  catalogTree: () => 'catalog.tree',
  /** The pg WAL archive per target and cluster (storage service). */
  catalogWal: () => 'catalog.wal',
  /** The live state of pg-agent's WAL receivers (pg-agent answers). */
  statusWal: () => 'status.wal',
} as const;

/** Whether `subject` is an `alert.<severity>.<kind>` subject (alerts are always JSON on the wire). */
export const isAlertSubject = (subject: string): boolean => subject.startsWith('alert.');

/** Whether `subject` matches a NATS filter with `*` (one token) and `>` (one or more trailing tokens) wildcards. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    const token = f[i];
    if (token === '>') return s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return f.length === s.length;
}

/** Wildcards for subscriptions and stream/consumer filters. */
export const filters = {
  allBackupCommands: 'backup.requested.>',
  allRestoreCommands: 'restore.requested.>',
  backupCommandsFor: (engine: Engine) => `backup.requested.${engine}.*`,
  restoreCommandsFor: (engine: Engine) => `restore.requested.${engine}.*`,
  artifactStored: 'artifact.stored.>',
  artifactPruned: 'artifact.pruned.>',
  verifyPassed: 'verify.passed.>',
  verifyFailed: 'verify.failed.>',
  backupStarted: 'backup.started.>',
  backupCompleted: 'backup.completed.>',
  backupFailed: 'backup.failed.>',
  restoreStarted: 'restore.started.>',
  restoreCompleted: 'restore.completed.>',
  restoreFailed: 'restore.failed.>',
  alerts: 'alert.>',
  commandRejected: 'command.rejected',
  walArchived: 'wal.archived.>',
  walProblem: 'wal.problem.>',
  wal: 'wal.>',
} as const;

export type CommandAction = 'backup' | 'restore';

export interface ParsedCommandSubject {
  readonly action: CommandAction;
  readonly engine: Engine;
  readonly target: string;
}

/**
 * Parses `backup.requested.<engine>.<target>` / `restore.requested.<engine>.<target>`.
 * Returns a reason string when the subject is not a command Tidemark can accept.
 */
export function parseCommandSubject(subject: string): ParsedCommandSubject | { readonly error: string } {
  const parts = subject.split('.');
  const [family, verb, engine, target] = parts;
  if ((family !== 'backup' && family !== 'restore') || verb !== 'requested') {
    return { error: `"${subject}" is not a command subject (expected backup.requested.<engine>.<target> or restore.requested.<engine>.<target>)` };
  }
  if (parts.length !== 4 || engine === undefined || target === undefined) {
    return { error: `"${subject}" must have exactly four tokens: ${family}.requested.<engine>.<target>` };
  }
  if (!isEngine(engine)) return { error: `unknown engine "${engine}" (known: ${ENGINES.join(', ')})` };
  if (!isTargetName(target)) return { error: `invalid target "${target}": ${TARGET_NAME_HINT}` };
  return { action: family, engine, target };
}

