// The JetStream layout, declared once. The runtime library creates or updates these at start-up.
// Everything here works on nats-server 2.9 (Debian bookworm): no `filter_subjects`, so every
// consumer has a single filter subject.
import { filters, type Engine } from './subjects.js';
import { MAX_COMMAND_BYTES } from './codec.js';

export interface StreamSpec {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly retention: 'workqueue' | 'limits';
  readonly maxAgeSeconds: number;
  readonly duplicateWindowSeconds: number;
  readonly maxMsgSize: number;
  readonly description: string;
}

const DAY = 24 * 3600;

/**
 * Only the engines that have agents are stored: a command for an engine without an agent is not
 * kept in a work queue that nobody drains. The intake watcher answers it with `command.rejected`
 * instead. Every engine has its agent now (pg-agent, qdrant-agent, files-agent).
 */
export const COMMAND_ENGINES: readonly Engine[] = ['pg', 'qdrant', 'files'];

export const COMMANDS_STREAM: StreamSpec = {
  name: 'TIDEMARK_COMMANDS',
  subjects: COMMAND_ENGINES.flatMap((e) => [filters.backupCommandsFor(e), filters.restoreCommandsFor(e)]),
  retention: 'workqueue',
  maxAgeSeconds: 7 * DAY,
  // Covers two schedulers firing the same slot and a scheduler restart that re-fires it.
  duplicateWindowSeconds: 2 * 3600,
  maxMsgSize: MAX_COMMAND_BYTES,
  description: 'Tidemark commands (work queue): backup.requested.*, restore.requested.*',
};

export const EVENTS_STREAM: StreamSpec = {
  name: 'TIDEMARK_EVENTS',
  subjects: [
    filters.backupStarted, filters.backupCompleted, filters.backupFailed,
    filters.artifactStored, filters.artifactPruned,
    filters.verifyPassed, filters.verifyFailed,
    filters.restoreStarted, filters.restoreCompleted, filters.restoreFailed,
    filters.alerts, filters.commandRejected,
  ],
  retention: 'limits',
  maxAgeSeconds: 90 * DAY,
  duplicateWindowSeconds: 2 * 3600,
  maxMsgSize: 1024 * 1024,
  description: 'Tidemark events: the audit history',
};

/**
 * The WAL archive's events: one per archived segment and one per partial-segment upload (every few
 * seconds per target), too many for the 90-day audit history. Problems (gaps, slot growth) are
 * here too and reach the audit history as alerts.
 */
export const WAL_STREAM: StreamSpec = {
  name: 'TIDEMARK_WAL',
  subjects: [filters.wal],
  retention: 'limits',
  maxAgeSeconds: 7 * DAY,
  duplicateWindowSeconds: 2 * 3600,
  maxMsgSize: 1024 * 1024,
  description: 'Tidemark WAL archive events: wal.archived.*, wal.problem.*',
};

export const STREAMS: readonly StreamSpec[] = [COMMANDS_STREAM, EVENTS_STREAM, WAL_STREAM];

/** Durable consumer names, one per (service, filter). An engine's agent drains its own commands (files-agent: files-agent-backups, files-agent-restores). */
export const consumers = {
  agentBackups: (engine: Engine) => `${engine}-agent-backups`,
  agentRestores: (engine: Engine) => `${engine}-agent-restores`,
  verifierArtifacts: 'verifier-artifact-stored',
  alerterVerifyFailed: 'alerter-verify-failed',
  alerterBackupFailed: 'alerter-backup-failed',
  alerterCommandRejected: 'alerter-command-rejected',
  alerterRestoreFailed: 'alerter-restore-failed',
  alerterBackupCompleted: 'alerter-backup-completed',
  /** backup.completed with problems (files): only new ones page, unlike the success tracking above. */
  alerterBackupIncomplete: 'alerter-backup-incomplete',
  alerterVerifyPassed: 'alerter-verify-passed',
  catalogArtifactStored: 'storage-artifact-stored',
  catalogVerifyPassed: 'storage-verify-passed',
  catalogVerifyFailed: 'storage-verify-failed',
  alerterWalProblem: 'alerter-wal-problem',
} as const;

/** JetStream KV buckets. Their content can always be rebuilt (the bucket is the truth). */
export const KV_BUCKETS = {
  schedulerState: 'tidemark_scheduler',
} as const;

/** The header JetStream uses for publish-side de-duplication. */
export const MSG_ID_HEADER = 'Nats-Msg-Id';
