// Message schemas. Commands are imperative (RequestBackup), events are past tense
// (ArtifactStored). Every message carries `schemaVersion`; a command that omits it is read as
// version 1 so that hand-written JSON commands stay short.
import { ALERT_KINDS, ENGINES, SEVERITIES, TARGET_NAME_HINT, TARGET_NAME_PATTERN } from './subjects.js';
import { ERROR_CODES, TidemarkError, type ErrorCode } from './errors.js';
import { parsePointInTimeText, pointInTimeProblem } from './point-in-time.js';
import {
  array, boolean, checkedString, isoDate, literal, number, object, oneOf, optional, record, string, unknownValue,
  withDefault, SchemaError, type Infer, type Schema,
} from './schema.js';

export const SCHEMA_VERSION = 1 as const;
const version = withDefault(literal(SCHEMA_VERSION), SCHEMA_VERSION);

/**
 * Artifact kinds. pg: `logical` (pg_dump) now, `base` (pg_basebackup) and `wal` next;
 * qdrant: `snapshot`, `export`, `incremental`; files: `tree`.
 */
export const ARTIFACT_KINDS = ['logical', 'base', 'wal', 'snapshot', 'export', 'incremental', 'tree'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

const engine = oneOf(ENGINES);
const target = string({ pattern: TARGET_NAME_PATTERN, hint: TARGET_NAME_HINT });
const id = string({ min: 1, max: 200 });
/**
 * An artifact id a sender names (restore, catalog.describe). It becomes a storage key segment, so
 * it is held to the storage keys' rule here, where the error names the field, not deep in storage.
 */
export const ARTIFACT_ID_PATTERN = /^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;
const artifactIdRef = string({ pattern: ARTIFACT_ID_PATTERN, hint: 'expected an artifact id such as 20261122T020000Z-1a2b3c4d5e (letters, digits, "_", "-" and ".")' });
const text = string({ max: 2000 });
const errorCode = oneOf(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]);
const errorInfo = object({ code: errorCode, message: text, retryable: boolean() });

// ---------------------------------------------------------------- commands

export const RequestBackup = object({
  schemaVersion: version,
  /** Dedupe id. Defaults to one derived from the stream sequence, stable across redeliveries. */
  requestId: optional(id),
  kind: optional(oneOf(ARTIFACT_KINDS)),
  reason: optional(text),
  requestedBy: optional(string({ max: 200 })),
  /** Set by the scheduler: which schedule fired, and for which slot. */
  scheduleId: optional(id),
  scheduledFor: optional(isoDate()),
  /** Overrides the target's `verify` setting for this one backup. */
  verify: optional(boolean()),
  /** Reserved for consistency groups: the group's recovery point this backup belongs to. */
  groupId: optional(id),
  /** qdrant: the collections to back up (default: the target's `collections`, else all). */
  collections: optional(array(string({ min: 1, max: 255 }), { max: 1000 })),
  /** qdrant exports: include payloads (default true). */
  includePayload: optional(boolean()),
  /** files: read and hash every file again instead of trusting size, mtime and inode of the parent snapshot. */
  fullRehash: optional(boolean()),
});
export type RequestBackup = Infer<typeof RequestBackup>;

/** pg: an LSN as PostgreSQL prints it, e.g. "0/3000060". */
export const LSN_PATTERN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;
const lsn = string({ pattern: LSN_PATTERN, hint: 'an LSN like 0/3000060' });

/**
 * pg point-in-time recovery target: exactly one of `time` (ISO 8601, RFC 3339 or PostgreSQL's
 * timestamptz text, to the microsecond; without an offset it is UTC: see point-in-time.ts), `lsn`, `restorePoint` (a name given to pg_create_restore_point) or `latest: true` (all
 * archived WAL, including the partial segment). `inclusive` (default true) stops just after the
 * target instead of just before it.
 */
export const PointInTime = object({
  time: optional(checkedString(pointInTimeProblem)),
  lsn: optional(lsn),
  restorePoint: optional(string({ min: 1, max: 63 })),
  latest: optional(literal(true)),
  inclusive: optional(boolean()),
}, { strict: true });
export type PointInTime = Infer<typeof PointInTime>;

/** The one recovery target a PointInTime names; COMMAND_INVALID unless exactly one is set. */
export type RecoveryTarget =
  /** `time` is UTC with six fraction digits (parsePointInTimeText's iso). */
  | { readonly type: 'time'; readonly time: string; readonly inclusive: boolean }
  | { readonly type: 'lsn'; readonly lsn: string; readonly inclusive: boolean }
  | { readonly type: 'restorePoint'; readonly name: string }
  | { readonly type: 'latest' };

export function recoveryTargetOf(point: PointInTime): RecoveryTarget {
  const named = (['time', 'lsn', 'restorePoint', 'latest'] as const).filter((field) => point[field] !== undefined);
  if (named.length !== 1) {
    throw new TidemarkError('COMMAND_INVALID', `pointInTime needs exactly one of time, lsn, restorePoint or latest; got ${named.length === 0 ? 'none' : named.join(', ')}`);
  }
  const inclusive = point.inclusive ?? true;
  if (point.time !== undefined) {
    const parsed = parsePointInTimeText(point.time);
    if (parsed === undefined) throw new TidemarkError('COMMAND_INVALID', `pointInTime.time: ${pointInTimeProblem(point.time)}`);
    return { type: 'time', time: parsed.iso, inclusive };
  }
  if (point.lsn !== undefined) return { type: 'lsn', lsn: point.lsn.toUpperCase(), inclusive };
  if (point.restorePoint !== undefined) return { type: 'restorePoint', name: point.restorePoint };
  return { type: 'latest' };
}

export const RequestRestore = object({
  schemaVersion: version,
  requestId: optional(id),
  /** The artifact to restore; defaults to the newest verified one of the target. */
  artifactId: optional(artifactIdRef),
  /** Database to restore into. Defaults to a new `<db>_restore_<timestamp>` database. */
  intoDatabase: optional(string({ pattern: /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, hint: 'a plain database name of at most 63 characters' })),
  /** Required to restore over an existing database; the old one is kept until success. */
  overwrite: withDefault(boolean(), false),
  /** qdrant: which collection's newest verified artifact to restore (when artifactId is absent). */
  collection: optional(string({ min: 1, max: 255 })),
  /** qdrant: the collection to restore into (default: a new `<collection>_restore_<timestamp>`). */
  intoCollection: optional(string({ min: 1, max: 255 })),
  reason: optional(text),
  requestedBy: optional(string({ max: 200 })),
  /**
   * pg: recover a physical (base) backup plus archived WAL to this point, into a new data
   * directory started as a promoted server. Without it a pg restore is logical (pg_restore).
   */
  pointInTime: optional(PointInTime),
  /** pg point-in-time: the data directory to restore into (default: a new one under the agent's pg.workDir). An existing, non-empty one needs overwrite: it is moved aside first. */
  intoDirectory: optional(string({ pattern: /^\/[^\0]*$/, hint: 'an absolute directory path' })),
  /** pg point-in-time: the port the restored server listens on (default: a free one). */
  intoPort: optional(number({ integer: true, min: 1, max: 65535 })),
  /** files: restore only these paths (relative to the snapshot root; a directory brings its subtree). */
  paths: optional(array(string({ min: 1, max: 4096 }), { max: 1000 })),
  /** files (s3 source): the bucket and key prefix to restore into (default: the source's bucket, a new prefix). */
  intoBucket: optional(string({ pattern: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, hint: 'an S3 bucket name' })),
  intoPrefix: optional(string({ max: 1024 })),
  groupId: optional(id),
});
export type RequestRestore = Infer<typeof RequestRestore>;

// ---------------------------------------------------------------- events

const scope = { schemaVersion: version, engine, target, requestId: id, occurredAt: isoDate() };

export const BackupStarted = object({ ...scope, kind: oneOf(ARTIFACT_KINDS), artifactId: id, agentId: string(), attempt: number({ integer: true, min: 1 }) });
export type BackupStarted = Infer<typeof BackupStarted>;

export const BackupCompleted = object({
  ...scope,
  kind: oneOf(ARTIFACT_KINDS),
  artifactId: id,
  storedBytes: number({ min: 0 }),
  durationMs: number({ min: 0 }),
  /** files: paths the backup could not store as they were (unreadable, changed while read, corrupt), and the first of them. */
  problemsCount: optional(number({ integer: true, min: 0 })),
  problems: optional(array(object({ path: string(), problem: string(), detail: optional(text) }), { max: 20 })),
});
export type BackupCompleted = Infer<typeof BackupCompleted>;

export const BackupFailed = object({
  ...scope,
  kind: oneOf(ARTIFACT_KINDS),
  artifactId: optional(id),
  error: errorInfo,
  attempt: number({ integer: true, min: 1 }),
  /** False when the agent will retry; alerts fire only on the final failure. */
  final: boolean(),
});
export type BackupFailed = Infer<typeof BackupFailed>;

export const ArtifactStored = object({
  ...scope,
  kind: oneOf(ARTIFACT_KINDS),
  artifactId: id,
  manifestKey: string(),
  storedBytes: number({ min: 0 }),
  sha256: string({ pattern: /^[0-9a-f]{64}$/, hint: 'a lowercase hex sha256' }),
  /** Whether the verifier should prove this artifact by restoring it. */
  verify: boolean(),
});
export type ArtifactStored = Infer<typeof ArtifactStored>;

export const VerificationCheck = object({
  name: string(),
  ok: boolean(),
  expected: optional(unknownValue()),
  actual: optional(unknownValue()),
  detail: optional(text),
});
export type VerificationCheck = Infer<typeof VerificationCheck>;

const verifyFields = {
  ...scope,
  artifactId: id,
  checks: array(VerificationCheck),
  durationMs: number({ min: 0 }),
};
export const VerifyPassed = object(verifyFields);
export type VerifyPassed = Infer<typeof VerifyPassed>;
export const VerifyFailed = object({ ...verifyFields, error: errorInfo });
export type VerifyFailed = Infer<typeof VerifyFailed>;

export const RestoreStarted = object({ ...scope, artifactId: id, database: string(), agentId: string() });
export type RestoreStarted = Infer<typeof RestoreStarted>;
/** pg point-in-time: where recovery stopped, as the restored server reports it. */
export const RecoveredTo = object({
  timeline: number({ integer: true, min: 1 }),
  /** The LSN replay ended at. */
  lsn: string(),
  /** The commit time of the last transaction replayed, when PostgreSQL reported one. */
  lastTransactionAt: optional(isoDate()),
});
export type RecoveredTo = Infer<typeof RecoveredTo>;

/** Recovery time, split: fetching and unpacking the base backup, replaying WAL, starting up. */
export const RecoveryTimes = object({
  downloadMs: number({ min: 0 }),
  replayMs: number({ min: 0 }),
  startMs: number({ min: 0 }),
  totalMs: number({ min: 0 }),
  /** WAL files fetched from the archive during replay. */
  walFilesFetched: optional(number({ integer: true, min: 0 })),
});
export type RecoveryTimes = Infer<typeof RecoveryTimes>;

export const RestoreCompleted = object({
  ...scope,
  artifactId: id,
  /** The database (logical) or data directory (point-in-time) restored into. */
  database: string(),
  durationMs: number({ min: 0 }),
  /** Where the overwritten database (or data directory) was moved to, when overwrite was requested. */
  previousDatabaseKeptAs: optional(string()),
  /** pg point-in-time: the promoted server's data directory and port. */
  dataDirectory: optional(string()),
  port: optional(number({ integer: true, min: 1, max: 65535 })),
  /** pg point-in-time: the address it listens on (pg.restoreListenAddress) and its unix socket directory. */
  host: optional(string()),
  socketDirectory: optional(string()),
  /** pg point-in-time: the OS user the server runs as, and the directory of its binaries (pg_ctl). */
  osUser: optional(string()),
  binDirectory: optional(string()),
  /** pg point-in-time: the target's role and database; they log in as they do on the source. */
  connectAs: optional(object({ user: string(), database: string() })),
  recoveredTo: optional(RecoveredTo),
  rto: optional(RecoveryTimes),
  /** Checks run on the restored server. */
  checks: optional(array(VerificationCheck)),
  /** files: what was written. */
  files: optional(object({ files: number({ integer: true, min: 0 }), directories: number({ integer: true, min: 0 }), symlinks: number({ integer: true, min: 0 }), bytes: number({ min: 0 }) })),
});
export type RestoreCompleted = Infer<typeof RestoreCompleted>;
export const RestoreFailed = object({ ...scope, artifactId: optional(id), database: optional(string()), error: errorInfo });
export type RestoreFailed = Infer<typeof RestoreFailed>;

/**
 * Progress of a long job (core NATS, not persisted: `progress.<backup|restore|verify>.<engine>.<target>`),
 * published every few seconds while it moves. Totals are absent while unknown.
 */
export const JobProgress = object({
  schemaVersion: version,
  engine,
  target,
  requestId: id,
  artifactId: optional(id),
  action: oneOf(['backup', 'restore', 'verify'] as const),
  occurredAt: isoDate(),
  filesDone: number({ integer: true, min: 0 }),
  filesTotal: optional(number({ integer: true, min: 0 })),
  bytesDone: number({ min: 0 }),
  bytesTotal: optional(number({ min: 0 })),
  bytesPerSecond: number({ min: 0 }),
  etaSeconds: optional(number({ min: 0 })),
  /** The path being worked on. */
  current: optional(string({ max: 4096 })),
});
export type JobProgress = Infer<typeof JobProgress>;

export const ArtifactPruned = object({ ...scope, artifactId: id, reason: text });
export type ArtifactPruned = Infer<typeof ArtifactPruned>;

// ---------------------------------------------------------------- the WAL archive (pg)

export const WAL_FILE_KINDS = ['segment', 'partial', 'history'] as const;
export type WalFileKind = (typeof WAL_FILE_KINDS)[number];

const walScope = { schemaVersion: version, engine, target, occurredAt: isoDate() };

/**
 * A WAL file reached storage: a closed segment, an upload of the open (partial) segment, or a
 * timeline history file. The lag says how far the archive is behind the primary right now.
 */
export const WalArchived = object({
  ...walScope,
  systemIdentifier: string(),
  /** PostgreSQL's file name, e.g. 000000010000000000000003 or 00000002.history. */
  file: string(),
  fileKind: oneOf(WAL_FILE_KINDS),
  timeline: number({ integer: true, min: 1 }),
  /** The WAL range the stored file covers (partial: up to the flushed position). */
  startLsn: optional(lsn),
  endLsn: optional(lsn),
  storedBytes: number({ integer: true, min: 0 }),
  /** Bytes of WAL the primary has written beyond endLsn at upload time. */
  lagBytes: optional(number({ min: 0 })),
  /** How old the oldest WAL not yet archived is (the RPO right now), in seconds. */
  lagSeconds: optional(number({ min: 0 })),
});
export type WalArchived = Infer<typeof WalArchived>;

/**
 * Something endangers point-in-time recovery:
 * - `gap`: a segment is missing from the archive between a retained base backup and the newest WAL;
 * - `timeline`: a timeline switch is not followed (a timeline's segments without its history file);
 * - `slot_growth`: the replication slot holds back more WAL than allowed (disk fills up on the primary);
 * - `lagging`: the archive is further behind the primary than allowed, or the receiver is down;
 * - `spool_full`: the receiver's local spool has no room for the next segment: archiving stops.
 */
export const WAL_PROBLEMS = ['gap', 'timeline', 'slot_growth', 'lagging', 'spool_full'] as const;
export type WalProblemKind = (typeof WAL_PROBLEMS)[number];

export const WalProblem = object({
  ...walScope,
  problem: oneOf(WAL_PROBLEMS),
  summary: text,
  systemIdentifier: optional(string()),
  /** gap: the first missing files (at most 100), and how many are missing in all. */
  missing: optional(array(string(), { max: 100 })),
  missingCount: optional(number({ integer: true, min: 0 })),
  /** slot_growth: bytes retained by the slot, and the configured limit. */
  retainedBytes: optional(number({ min: 0 })),
  limitBytes: optional(number({ min: 0 })),
  /** lagging: the archive's lag, and the configured limit. */
  lagSeconds: optional(number({ min: 0 })),
  limitSeconds: optional(number({ min: 0 })),
  details: optional(record(unknownValue())),
});
export type WalProblem = Infer<typeof WalProblem>;

export const CommandRejected = object({
  schemaVersion: version,
  occurredAt: isoDate(),
  subject: string(),
  error: errorInfo,
  sizeBytes: number({ min: 0 }),
  /** The first bytes of the payload, for the sender to recognise it; never decoded secrets. */
  payloadPreview: string({ max: 512 }),
  streamSequence: optional(number()),
});
export type CommandRejected = Infer<typeof CommandRejected>;

export const Alert = object({
  schemaVersion: version,
  occurredAt: isoDate(),
  severity: oneOf(SEVERITIES),
  kind: oneOf(ALERT_KINDS),
  summary: text,
  engine: optional(engine),
  target: optional(target),
  artifactId: optional(id),
  requestId: optional(id),
  error: optional(errorInfo),
  /** Repeats with the same key inside the alerter's window are delivered once. */
  dedupeKey: string(),
  details: optional(record(unknownValue())),
});
export type Alert = Infer<typeof Alert>;

// ---------------------------------------------------------------- catalog request/reply

export const CatalogListRequest = object({
  engine: optional(engine),
  target: optional(target),
  limit: optional(number({ integer: true, min: 1, max: 10000 })),
});
export type CatalogListRequest = Infer<typeof CatalogListRequest>;

export const CatalogDescribeRequest = object({ artifactId: artifactIdRef, engine: optional(engine), target: optional(target) });
export type CatalogDescribeRequest = Infer<typeof CatalogDescribeRequest>;

/** `catalog.tree` (files): the entries of one snapshot (default: the newest) under `path`, one level or all. */
export const CatalogTreeRequest = object({
  target,
  artifactId: optional(artifactIdRef),
  path: optional(string({ max: 4096 })),
  recursive: optional(boolean()),
  limit: optional(number({ integer: true, min: 1, max: 100000 })),
});
export type CatalogTreeRequest = Infer<typeof CatalogTreeRequest>;

export const CatalogTreeEntry = object({
  path: string(),
  type: oneOf(['file', 'dir', 'symlink', 'hardlink'] as const),
  size: number({ min: 0 }),
  mode: number({ integer: true, min: 0 }),
  mtime: isoDate(),
  linkTarget: optional(string()),
  /** hardlink: the path of the file it links to (in the same snapshot). */
  linkTo: optional(string()),
  /** The content could not be stored as good (unreadable, digest_mismatch, vanished), or it changed while read. */
  problem: optional(string()),
});
export type CatalogTreeEntry = Infer<typeof CatalogTreeEntry>;

export const CatalogTreeReply = object({ artifactId: id, entries: array(CatalogTreeEntry), truncated: boolean() });
export type CatalogTreeReply = Infer<typeof CatalogTreeReply>;

/**
 * Validates a decoded message, converting schema problems into a non-retryable COMMAND_INVALID
 * (or COMMAND_UNKNOWN_VERSION) TidemarkError whose message names the fields.
 */
export function parseMessage<T>(schema: Schema<T>, value: unknown): T {
  if (typeof value === 'object' && value !== null && 'schemaVersion' in value) {
    const v = (value as { schemaVersion: unknown }).schemaVersion;
    if (v !== undefined && v !== null && v !== SCHEMA_VERSION) {
      throw new TidemarkError('COMMAND_UNKNOWN_VERSION', `schemaVersion ${JSON.stringify(v)} is not supported (this build speaks ${SCHEMA_VERSION})`);
    }
  }
  try {
    return schema.parse(value);
  } catch (e) {
    if (e instanceof SchemaError) throw new TidemarkError('COMMAND_INVALID', e.message, { cause: e });
    throw e;
  }
}



export const VERIFICATION_STATUSES = ['unverified', 'passed', 'failed', 'not-required'] as const;
export type VerificationStatus = (typeof VERIFICATION_STATUSES)[number];

/** One line of the catalog (reply of `catalog.list`): a manifest's summary and its verification. */
export const CatalogEntry = object({
  artifactId: id,
  engine,
  target,
  kind: oneOf(ARTIFACT_KINDS),
  format: string(),
  requestId: id,
  createdAt: isoDate(),
  finishedAt: isoDate(),
  storedBytes: number({ min: 0 }),
  rawBytes: number({ min: 0 }),
  sha256: string(),
  compression: string(),
  encrypted: boolean(),
  verify: boolean(),
  reason: optional(text),
  verification: oneOf(VERIFICATION_STATUSES),
  verifiedAt: optional(isoDate()),
  verificationError: optional(object({ code: string(), message: string() })),
});
export type CatalogEntry = Infer<typeof CatalogEntry>;

export const CatalogListReply = object({ artifacts: array(CatalogEntry), total: optional(number({ integer: true, min: 0 })) });
export type CatalogListReply = Infer<typeof CatalogListReply>;

// ---------------------------------------------------------------- catalog.wal (the pg WAL archive)

/** `catalog.wal`: one target's archive, or every archived target's when `target` is absent. */
export const CatalogWalRequest = object({ target: optional(target) });
export type CatalogWalRequest = Infer<typeof CatalogWalRequest>;

/** One cluster (system identifier) of a target's WAL archive. */
export const WalArchiveSummary = object({
  target,
  systemIdentifier: string(),
  /** The cluster archived most recently (the live one); older clusters await retention. */
  current: boolean(),
  segments: number({ integer: true, min: 0 }),
  partials: number({ integer: true, min: 0 }),
  histories: number({ integer: true, min: 0 }),
  /** Bytes stored (data and manifests). */
  storedBytes: number({ min: 0 }),
  timelines: array(number({ integer: true, min: 1 })),
  /** First and last closed segment by name (timeline, then position): the last is where "latest" recovery reaches. */
  firstSegment: optional(string()),
  lastSegment: optional(string()),
  /** The newest file committed (a segment, a partial or a history file) and when. */
  newestFile: optional(string()),
  newestArchivedAt: optional(isoDate()),
});
export type WalArchiveSummary = Infer<typeof WalArchiveSummary>;

export const CatalogWalReply = object({ archives: array(WalArchiveSummary) });
export type CatalogWalReply = Infer<typeof CatalogWalReply>;

// ---------------------------------------------------------------- status.wal (pg-agent's live receivers)

/** `status.wal`: one target's receiver, or every WAL target's when `target` is absent. */
export const WalStatusRequest = object({ target: optional(target) });
export type WalStatusRequest = Infer<typeof WalStatusRequest>;

/** One WAL target's receiver as the agent sees it now. */
export const WalReceiverState = object({
  target,
  /** running | starting (the server not reached yet) | receiver down | stopped | refused (the config prevents archiving). */
  state: string(),
  /** pg_receivewal runs and the server answers: WAL is being streamed into the archive. */
  receiverUp: boolean(),
  /** Since when it has not been up. */
  downSince: optional(isoDate()),
  lastArchivedFile: optional(string()),
  lastArchivedAt: optional(isoDate()),
  /** The age of the oldest WAL not archived yet: the RPO right now. */
  lagSeconds: optional(number({ min: 0 })),
  lagBytes: optional(number({ min: 0 })),
  lastError: optional(string()),
});
export type WalReceiverState = Infer<typeof WalReceiverState>;

export const WalStatusReply = object({ agent: string(), receivers: array(WalReceiverState) });
export type WalStatusReply = Infer<typeof WalStatusReply>;
