// Message schemas. Commands are imperative (RequestBackup), events are past tense
// (ArtifactStored). Every message carries `schemaVersion`; a command that omits it is read as
// version 1 so that hand-written JSON commands stay short.
import { ALERT_KINDS, ENGINES, SEVERITIES, TARGET_NAME_HINT, TARGET_NAME_PATTERN } from './subjects.js';
import { ERROR_CODES, TidemarkError, type ErrorCode } from './errors.js';
import {
  array, boolean, isoDate, literal, number, object, oneOf, optional, record, string, unknownValue,
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
});
export type RequestBackup = Infer<typeof RequestBackup>;

export const RequestRestore = object({
  schemaVersion: version,
  requestId: optional(id),
  /** The artifact to restore; defaults to the newest verified one of the target. */
  artifactId: optional(id),
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
  /** Reserved for point-in-time recovery (time, LSN, restore point or "latest"). */
  pointInTime: optional(unknownValue()),
  groupId: optional(id),
});
export type RequestRestore = Infer<typeof RequestRestore>;

// ---------------------------------------------------------------- events

const scope = { schemaVersion: version, engine, target, requestId: id, occurredAt: isoDate() };

export const BackupStarted = object({ ...scope, kind: oneOf(ARTIFACT_KINDS), artifactId: id, agentId: string(), attempt: number({ integer: true, min: 1 }) });
export type BackupStarted = Infer<typeof BackupStarted>;

export const BackupCompleted = object({ ...scope, kind: oneOf(ARTIFACT_KINDS), artifactId: id, storedBytes: number({ min: 0 }), durationMs: number({ min: 0 }) });
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
export const RestoreCompleted = object({
  ...scope,
  artifactId: id,
  database: string(),
  durationMs: number({ min: 0 }),
  /** Where the overwritten database was moved to, when overwrite was requested. */
  previousDatabaseKeptAs: optional(string()),
});
export type RestoreCompleted = Infer<typeof RestoreCompleted>;
export const RestoreFailed = object({ ...scope, artifactId: optional(id), database: optional(string()), error: errorInfo });
export type RestoreFailed = Infer<typeof RestoreFailed>;

export const ArtifactPruned = object({ ...scope, artifactId: id, reason: text });
export type ArtifactPruned = Infer<typeof ArtifactPruned>;

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

export const CatalogDescribeRequest = object({ artifactId: id, engine: optional(engine), target: optional(target) });
export type CatalogDescribeRequest = Infer<typeof CatalogDescribeRequest>;

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
