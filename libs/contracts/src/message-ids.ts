// The Nats-Msg-Id of every message Tidemark publishes is built here, and nowhere else.
//
// JetStream drops a message whose id it already holds inside the stream's duplicate window, so an
// id names the event, not the delivery: an agent that publishes again after a redelivery, or a
// second scheduler firing the same slot, is a no-op for the stream. The strings are exactly those
// of earlier releases: a stream keeps its window across an upgrade, and a changed spelling would
// let a repeat through.
//
// Each builder's first token (up to the first ":") is its own, so two builders never produce the
// same id, except two families told apart by shape: the WAL file builders share `wal` (a segment
// name has no suffix, a partial's and a history file's end in theirs) and the WAL problem builders
// share `wal-problem` (four tokens from pg-agent, seven from the storage check).
// Within a builder the variable parts are unambiguous: target names and artifact ids hold no ":",
// and a request id (which may) is always last or followed by a number.
import type { AlertKind, Engine } from './subjects.js';
import type { ErrorCode } from './errors.js';
import type { WalProblemKind } from './messages.js';

/** The alert kinds of the WAL archive (one per WalProblem). */
export type WalAlertKind = Extract<AlertKind, `wal_${string}`>;

/** A WAL file's content is named by the first 16 hex digits of its sha256: enough to tell revisions apart. */
const digestOf = (sha256: string): string => sha256.slice(0, 16);

export const messageIds = {
  // ------------------------------------------------ commands (the commands stream)

  /** One scheduled slot is one command, however many schedulers fire it. */
  scheduledBackup: (engine: Engine, target: string, scheduleId: string, slot: Date): string =>
    `sched:${engine}:${target}:${scheduleId}:${slot.toISOString()}`,

  // ------------------------------------------------ events (the events stream)

  /** Every attempt of a backup announces its start. */
  backupStarted: (artifactId: string, attempt: number): string => `started:${artifactId}:${attempt}`,
  /** Every failed attempt is recorded; before the artifact is known the request names it. */
  backupFailed: (failure: { readonly artifactId?: string | undefined; readonly requestId: string }, attempt: number): string =>
    `failed:${failure.artifactId ?? failure.requestId}:${attempt}`,
  artifactStored: (artifactId: string): string => `stored:${artifactId}`,
  backupCompleted: (artifactId: string): string => `completed:${artifactId}`,
  /** passed or failed share the id: the stream keeps one verdict per artifact, however often it is verified. */
  verification: (artifactId: string): string => `verify:${artifactId}`,
  artifactPruned: (artifactId: string): string => `pruned:${artifactId}`,
  restoreStarted: (requestId: string, attempt: number): string => `restore-started:${requestId}:${attempt}`,
  /** Once per request: logical and point-in-time restores alike. */
  restoreCompleted: (requestId: string): string => `restore-completed:${requestId}`,
  /** Only the final failure is published, once per request. */
  restoreFailed: (requestId: string): string => `restore-failed:${requestId}`,
  /** `delivery` is the stream sequence of the rejected command, or the sha256 of a payload read outside a stream. */
  commandRejected: (subject: string, delivery: number | string): string => `rejected:${subject}:${delivery}`,

  // ------------------------------------------------ alerts (the events stream; the id is the alert's dedupeKey)

  verifyFailedAlert: (engine: Engine, target: string, artifactId: string): string => `verify_failed:${engine}:${target}:${artifactId}`,
  backupFailedAlert: (engine: Engine, target: string, requestId: string): string => `backup_failed:${engine}:${target}:${requestId}`,
  restoreFailedAlert: (engine: Engine, target: string, requestId: string): string => `restore_failed:${engine}:${target}:${requestId}`,
  backupIncompleteAlert: (engine: Engine, target: string, artifactId: string): string => `backup_incomplete:${engine}:${target}:${artifactId}`,
  /** Repeats of the same refusal on the same subject are one alert. */
  commandRejectedAlert: (subject: string, code: ErrorCode): string => `command_rejected:${subject}:${code}`,
  backupMissedAlert: (engine: Engine, target: string, windowStart: Date): string =>
    `backup_missed:${engine}:${target}:${windowStart.toISOString()}`,
  /** `identity` names the problem itself (the first missing file, the timeline), so a new one pages at once. */
  walProblemAlert: (kind: WalAlertKind, engine: Engine, target: string, systemIdentifier: string | undefined, identity: string): string =>
    `${kind}:${engine}:${target}:${systemIdentifier ?? '-'}:${identity}`,

  // ------------------------------------------------ the WAL archive (the WAL stream)

  /** A closed segment never changes: one event per segment. */
  walSegmentArchived: (systemIdentifier: string, file: string): string => `wal:${systemIdentifier}:${file}`,
  /** Each upload of the open segment that reaches further (its end LSN, or its content when the end is unknown). */
  walPartialArchived: (systemIdentifier: string, file: string, reached: { readonly endLsn: string } | { readonly sha256: string }): string =>
    `wal:${systemIdentifier}:${file}:${'endLsn' in reached ? reached.endLsn : digestOf(reached.sha256)}`,
  /** A history file's content is fixed once written; the digest tells a rewritten one apart. */
  walHistoryArchived: (systemIdentifier: string, file: string, sha256: string): string =>
    `wal:${systemIdentifier}:${file}:${digestOf(sha256)}`,
  /** pg-agent's own findings (receiver down, lag, slot growth): once per kind per `period` (a time bucket). */
  walReceiverProblem: (target: string, problem: WalProblemKind, period: number): string => `wal-problem:${target}:${problem}:${period}`,
  /** The storage service's archive check: once per finding per `period` (a time bucket). */
  walArchiveProblem: (
    engine: Engine,
    target: string,
    finding: { readonly systemIdentifier: string; readonly problem: WalProblemKind; readonly key: string },
    period: number,
  ): string => `wal-problem:${engine}:${target}:${finding.systemIdentifier}:${finding.problem}:${finding.key}:${period}`,
} as const;
