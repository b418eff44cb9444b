// The artifact manifest: a self-describing JSON document written last, which commits the
// artifact. Everything the catalog, retention and the verifier need is in here, so the whole
// state of Tidemark can be rebuilt from the bucket alone.
import { ENGINES, TARGET_NAME_HINT, TARGET_NAME_PATTERN } from './subjects.js';
import { ARTIFACT_KINDS } from './messages.js';
import { array, boolean, isoDate, literal, nullable, number, object, oneOf, optional, record, string, unknownValue, type Infer } from './schema.js';

export const MANIFEST_VERSION = 1 as const;
export const COMPRESSIONS = ['zstd', 'gzip', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];
export const ENCRYPTION_ALGORITHM = 'aes-256-gcm-chunked-v1' as const;

export const TableFacts = object({
  schema: string(),
  name: string(),
  rows: number({ integer: true, min: 0 }),
  /** Order-independent checksum of the rows' text form (see pg-agent's facts.ts). */
  checksum: optional(string()),
});
export type TableFacts = Infer<typeof TableFacts>;

/** A nearest-neighbour probe recorded at backup time and replayed on the restored copy. */
export const VectorProbe = object({
  schema: string(),
  table: string(),
  column: string(),
  keyColumn: string(),
  /** Primary key (as text) of the row whose vector is the query. */
  queryKey: string(),
  k: number({ integer: true, min: 1 }),
  /** Primary keys (as text) of the k nearest rows by L2 distance, nearest first. */
  topKeys: array(string()),
});
export type VectorProbe = Infer<typeof VectorProbe>;

export const PgSourceFacts = object({
  serverVersion: string(),
  serverVersionNum: number({ integer: true }),
  database: string(),
  databaseSizeBytes: number({ min: 0 }),
  extensions: array(object({ name: string(), version: string() })),
  tables: array(TableFacts),
  vectorProbes: array(VectorProbe),
  /** The exported snapshot the dump and the facts were both taken from. */
  snapshot: optional(string()),
});
export type PgSourceFacts = Infer<typeof PgSourceFacts>;

/**
 * `source` of a pg base backup (kind "base", format "pg_basebackup-tar"): what pg_basebackup and
 * the server said, plus the data-level facts of the target's database for the verifier.
 */
export const PgBaseSourceFacts = object({
  label: string(),
  /** LSNs as PostgreSQL prints them. Recovery from this backup is consistent at stopLsn. */
  startLsn: string(),
  checkpointLsn: string(),
  stopLsn: string(),
  startTimeline: number({ integer: true, min: 1 }),
  stopTimeline: number({ integer: true, min: 1 }),
  /** When the backup started (backup_label) and ended (pg_basebackup exited), ISO 8601. */
  startedAt: isoDate(),
  stoppedAt: isoDate(),
  serverVersion: string(),
  serverVersionNum: number({ integer: true }),
  /** pg_control's system identifier (decimal): WAL of another cluster never mixes in. */
  systemIdentifier: string(),
  walSegmentSize: number({ integer: true, min: 1 }),
  pgvectorVersion: nullable(string()),
  /** PostgreSQL's own backup_manifest is the tar's last member; its size and sha256 as stored there. */
  backupManifest: object({ bytes: number({ integer: true, min: 0 }), sha256: optional(string()) }),
  /** Server-side compression used between the server and the agent (the stored tar is always plain). */
  serverCompression: optional(string()),
  /** Throttle applied (kB/s), if any. */
  maxRateKbps: optional(number({ integer: true, min: 1 })),
  /**
   * Row counts, checksums and kNN probes of the target's database, taken in a snapshot when the
   * backup started; tables written while the backup ran are listed in `changedTables` and only
   * checked for readability (their state in the backup is that of stopLsn, not of the snapshot).
   */
  database: optional(PgSourceFacts),
  changedTables: optional(array(string())),
});
export type PgBaseSourceFacts = Infer<typeof PgBaseSourceFacts>;

export const PipelineFacts = object({
  compression: oneOf(COMPRESSIONS),
  compressionLevel: optional(number({ integer: true })),
  encryption: nullable(object({ algorithm: literal(ENCRYPTION_ALGORITHM), keyId: string(), chunkSize: number({ integer: true, min: 1 }) })),
});
export type PipelineFacts = Infer<typeof PipelineFacts>;

/** The stored object a manifest commits. */
export const StoredData = object({
  key: string(),
  /** Bytes as stored (after compression and encryption). */
  storedBytes: number({ integer: true, min: 0 }),
  /** Bytes the source produced, before compression. */
  rawBytes: number({ integer: true, min: 0 }),
  /** sha256 of the stored bytes. */
  sha256: string({ pattern: /^[0-9a-f]{64}$/ }),
});
export type StoredData = Infer<typeof StoredData>;

export const Manifest = object({
  manifestVersion: literal(MANIFEST_VERSION),
  id: string(),
  engine: oneOf(ENGINES),
  target: string({ pattern: TARGET_NAME_PATTERN, hint: TARGET_NAME_HINT }),
  kind: oneOf(ARTIFACT_KINDS),
  /** e.g. "pg_dump-custom" — what the decoded bytes are. */
  format: string(),
  requestId: string(),
  createdAt: isoDate(),
  finishedAt: isoDate(),
  agent: object({ id: string(), version: string() }),
  /** Engine-specific facts about the source at backup time (PgSourceFacts for pg). */
  source: record(unknownValue()),
  pipeline: PipelineFacts,
  data: StoredData,
  /** Whether the verifier is expected to prove this artifact. */
  verify: boolean(),
  /** Reserved: parent artifact for chains (incrementals, WAL) and consistency groups. */
  parentId: optional(string()),
  groupId: optional(string()),
  reason: optional(string()),
});
export type Manifest = Infer<typeof Manifest>;

/**
 * One WAL file in the archive, written after its data object: it commits the file. Keys:
 * `wal/pg/<target>/<systemIdentifier>/<file>/manifest.json` (see libs/storage wal-keys.ts).
 */
export const WalFileManifest = object({
  manifestVersion: literal(MANIFEST_VERSION),
  engine: literal('pg'),
  target: string({ pattern: TARGET_NAME_PATTERN, hint: TARGET_NAME_HINT }),
  systemIdentifier: string({ pattern: /^\d+$/, hint: 'a decimal system identifier' }),
  /** PostgreSQL's file name; partial uploads are named `<segment>.partial`. */
  file: string(),
  fileKind: oneOf(['segment', 'partial', 'history'] as const),
  timeline: number({ integer: true, min: 1 }),
  /** Segments: the range the file covers; partials end at the flushed position uploaded. */
  startLsn: optional(string()),
  endLsn: optional(string()),
  archivedAt: isoDate(),
  agent: object({ id: string(), version: string() }),
  pipeline: PipelineFacts,
  data: StoredData,
});
export type WalFileManifest = Infer<typeof WalFileManifest>;

/** Written beside the manifest by the verifier. */
export const VerificationRecord = object({
  artifactId: string(),
  status: oneOf(['passed', 'failed'] as const),
  verifiedAt: isoDate(),
  durationMs: number({ min: 0 }),
  checks: array(object({ name: string(), ok: boolean(), expected: optional(unknownValue()), actual: optional(unknownValue()), detail: optional(string()) })),
  error: optional(object({ code: string(), message: string(), retryable: boolean() })),
});
export type VerificationRecord = Infer<typeof VerificationRecord>;

// ---------------------------------------------------------------- qdrant

/** The first points of a collection in id order, hashed; compared after a restore. */
export const QdrantSampleFingerprint = object({
  size: number({ integer: true, min: 0 }),
  /** Point ids (integers or UUIDs) in id order. */
  ids: array(unknownValue()),
  /** sha256 over ids and float32 vector bytes (see qdrant-agent canonical.ts). */
  vectorsSha256: string(),
  /** sha256 over ids and canonical payload JSON; absent when payloads were not exported. */
  payloadSha256: optional(string()),
});
export type QdrantSampleFingerprint = Infer<typeof QdrantSampleFingerprint>;

/** A nearest-neighbour query recorded at backup time and replayed on the restored collection. */
export const QdrantProbe = object({
  /** The point whose stored vector is the query. */
  queryId: unknownValue(),
  /** Named vector the query runs on; absent for the unnamed vector. */
  using: optional(string()),
  k: number({ integer: true, min: 1 }),
  /** Ids of the k nearest points, nearest first. */
  topIds: array(unknownValue()),
});
export type QdrantProbe = Infer<typeof QdrantProbe>;

export const QdrantSourceFacts = object({
  qdrantVersion: string(),
  collection: string(),
  /** The collection config as Qdrant reported it (params, hnsw, optimizer, wal, quantization). */
  config: record(unknownValue()),
  payloadSchema: optional(record(unknownValue())),
  vectors: array(object({ name: string(), kind: oneOf(['dense', 'sparse', 'multi'] as const), size: optional(number()), distance: optional(string()) })),
  sharding: object({
    shardNumber: number({ integer: true, min: 1 }),
    replicationFactor: number({ integer: true, min: 1 }),
    writeConsistencyFactor: optional(number({ integer: true, min: 1 })),
    method: string(),
  }),
  /** What the artifact covers, e.g. "single node: all local shards". */
  coverage: string(),
  /** Exact count at backup time. */
  pointsCount: number({ integer: true, min: 0 }),
  sample: QdrantSampleFingerprint,
  probes: array(QdrantProbe),
  /** Exports only. */
  includePayload: optional(boolean()),
  /** Incremental exports: the payload timestamp field and the marks the chain is cut at. */
  incremental: optional(object({ field: string(), parentHighWater: optional(unknownValue()), highWater: optional(unknownValue()) })),
  /** Snapshots: Qdrant's snapshot name and the sha256 it reported (null when it gives none). */
  snapshot: optional(object({ name: string(), qdrantSha256: nullable(string()), sha256: string(), bytes: number({ integer: true, min: 0 }) })),
});
export type QdrantSourceFacts = Infer<typeof QdrantSourceFacts>;

// ---------------------------------------------------------------- files

/** A problem with one path of a files backup: reported, never stored silently as good. */
export const FILES_PROBLEMS = ['unreadable', 'changed_during_backup', 'vanished', 'digest_mismatch', 'unsupported_type', 'missing_layer'] as const;
export type FilesProblemKind = (typeof FILES_PROBLEMS)[number];
export const FilesProblem = object({
  /** The path relative to the source root ('/'-separated; invalid UTF-8 shown with U+FFFD). */
  path: string(),
  problem: oneOf(FILES_PROBLEMS),
  detail: optional(string()),
});
export type FilesProblem = Infer<typeof FilesProblem>;

/** One Ollama model as its manifest describes it (models/manifests/<registry>/<namespace>/<name>/<tag>). */
export const OllamaModel = object({
  /** e.g. "registry.ollama.ai/library/llama3". */
  name: string(),
  tag: string(),
  /** sha256 of the model's manifest file, "sha256:<hex>" as Ollama prints it. */
  digest: string(),
  /** Sum of the layer and config sizes the manifest declares. */
  size: number({ min: 0 }),
  /** Layer (and config) blob digests, "sha256:<hex>". */
  layers: array(string()),
});
export type OllamaModel = Infer<typeof OllamaModel>;

/**
 * `source` of a files snapshot (engine "files", kind "tree", format "tidemark-tree-v1"). The data
 * object is the tree (every path's metadata and chunk list, encrypted like any artifact); the
 * chunks live in the shared chunk repository (`chunks/` in the bucket).
 */
export const FilesSourceFacts = object({
  sourceKind: oneOf(['directory', 's3', 'ollama'] as const),
  /** The source root: a path, or s3://bucket/prefix (never credentials). */
  location: string(),
  files: number({ integer: true, min: 0 }),
  directories: number({ integer: true, min: 0 }),
  symlinks: number({ integer: true, min: 0 }),
  /** Paths stored as hard links to an earlier path of the same snapshot. */
  hardLinks: number({ integer: true, min: 0 }),
  /** Bytes of every file's content (logical size; sparse holes count). */
  totalBytes: number({ min: 0 }),
  /** Files not read again because size, mtime and inode (or ETag) matched the parent snapshot. */
  unchangedFiles: number({ integer: true, min: 0 }),
  /** Plaintext bytes of chunks this snapshot added to the repository, and what they took once stored. */
  newBytes: number({ min: 0 }),
  newStoredBytes: number({ min: 0 }),
  /** Plaintext bytes of chunks found already in the repository (dedup). */
  reusedBytes: number({ min: 0 }),
  newChunks: number({ integer: true, min: 0 }),
  reusedChunks: number({ integer: true, min: 0 }),
  chunker: object({ algorithm: string(), minBytes: number({ integer: true }), avgBytes: number({ integer: true }), maxBytes: number({ integer: true }) }),
  /** 'hmac-sha256' when encryption is on (the bucket never shows plaintext hashes), else 'sha256'. */
  chunkIds: oneOf(['hmac-sha256', 'sha256'] as const),
  /** True when every file was read and hashed again, whatever the parent said. */
  fullRehash: boolean(),
  /** Problems (the first 1000) and how many there were in all. */
  problems: array(FilesProblem),
  problemsCount: number({ integer: true, min: 0 }),
  /** Files that changed while they were read (also in problems as changed_during_backup). */
  changedDuringBackupCount: number({ integer: true, min: 0 }),
  /**
   * A version 2 tree's segments (chunks of the tree itself): how many it has, how many this
   * snapshot stored (the rest were the parent's, unchanged), and what those took once stored.
   */
  tree: optional(object({ segments: number({ integer: true, min: 0 }), newSegments: number({ integer: true, min: 0 }), newStoredBytes: number({ min: 0 }) })),
  /** ollama: the model inventory at backup time. */
  ollama: optional(object({ models: array(OllamaModel), blobs: number({ integer: true, min: 0 }), corruptBlobs: array(string()) })),
});
export type FilesSourceFacts = Infer<typeof FilesSourceFacts>;
