// The operator's configuration file (tidemark.yaml), shared by every service. Unknown keys are
// errors so that a typo fails at start-up, naming the field, instead of being silently ignored.
// Secrets are never written in the file: it names the environment variable or file holding them.
import {
  COMPRESSIONS, EVENT_ENCODINGS, SEVERITIES, SchemaError, TARGET_NAME_HINT, TARGET_NAME_PATTERN, array, boolean, literal, number, object, oneOf, optional,
  string, withDefault, type Infer, type Schema,
} from '@tidemark/contracts';
import { DEFAULT_CONSUMER_SETTINGS } from '@tidemark/runtime';

const envName = string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: 'an environment variable name' });

const secretRef = {
  /** Name of the environment variable holding the secret. */
  passwordEnv: optional(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: 'an environment variable name' })),
  /** Path of a file holding the secret (e.g. a Docker secret). */
  passwordFile: optional(string({ min: 1 })),
};

export const PostgresConnection = object(
  {
    host: withDefault(string({ min: 1 }), '127.0.0.1'),
    port: withDefault(number({ integer: true, min: 1, max: 65535 }), 5432),
    user: withDefault(string({ min: 1 }), 'postgres'),
    database: withDefault(string({ min: 1 }), 'postgres'),
    sslmode: optional(oneOf(['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const)),
    ...secretRef,
  },
  { strict: true },
);
export type PostgresConnection = Infer<typeof PostgresConnection>;

/** How the agent reaches a Qdrant target. The API key is read from the variable it names. */
export const QdrantConnection = object(
  {
    url: string({ pattern: /^https?:\/\/[^/]+\/?$/, hint: 'an http(s)://host[:port] URL, e.g. http://qdrant:6333' }),
    apiKeyEnv: optional(string({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: 'an environment variable name' })),
    /** Collections to back up; all of them when absent. */
    collections: optional(array(string({ min: 1, max: 255 }))),
    /** Per-call timeout in ms (default 30 s). */
    timeoutMs: optional(number({ integer: true, min: 100 })),
    /** Payload timestamp field (number or RFC 3339) that incremental exports compare. */
    incrementalField: optional(string({ min: 1 })),
  },
  { strict: true },
);
export type QdrantConnection = Infer<typeof QdrantConnection>;

export const Retention = object(
  {
    /** Keep at most this many committed artifacts per target (0 = no count limit). */
    keepLast: withDefault(number({ integer: true, min: 0 }), 7),
    /** Remove artifacts older than this many days (0 = no age limit). */
    maxAgeDays: withDefault(number({ min: 0 }), 30),
  },
  { strict: true },
);
export type Retention = Infer<typeof Retention>;

/** pg targets: continuous WAL archiving with pg_receivewal on a physical replication slot. */
export const WalArchiving = object(
  {
    enabled: withDefault(boolean(), false),
    /** Physical replication slot, created when missing (default tidemark_<target>, "-" → "_"). */
    slot: optional(string({ pattern: /^[a-z0-9_]{1,63}$/, hint: 'slot names use lowercase letters, digits and "_"' })),
    /** How often the open (partial) segment is uploaded when it grew: the RPO in seconds. */
    partialIntervalSeconds: withDefault(number({ min: 1 }), 5),
    /** Alert (wal_slot_growth) when the slot holds back more WAL than this. */
    maxSlotRetainedMb: withDefault(number({ min: 1 }), 4096),
    /** Alert (wal_lagging) when the archive is further behind the primary than this. */
    maxLagSeconds: withDefault(number({ min: 1 }), 300),
  },
  { strict: true },
);
export type WalArchiving = Infer<typeof WalArchiving>;

/** pg targets: how base backups (kind "base") are taken. */
export const BaseBackupSettings = object(
  {
    /** pg_basebackup --max-rate in kB/s (32 to 1048576): the throttle that protects production. */
    maxRateKbps: optional(number({ integer: true, min: 32, max: 1048576 })),
    /** Process priority (nice, 0..19) for pg_basebackup while it runs. */
    nice: withDefault(number({ integer: true, min: 0, max: 19 }), 0),
    /** Compress on the server (pg_basebackup --compress=server-zstd:workers=N) before the network. */
    serverCompression: withDefault(oneOf(['none', 'zstd'] as const), 'none'),
    serverCompressionWorkers: optional(number({ integer: true, min: 1, max: 64 })),
    /** The starting checkpoint: fast (at once), or spread (gentler; the default when maxRateKbps is set). */
    checkpoint: optional(oneOf(['fast', 'spread'] as const)),
    /**
     * Per-table checksums of the target's database with each base backup (a second full read of the
     * data on production, while the backup runs). Off by default: pg_verifybackup already proves every
     * file byte-identical to what the server sent, and row counts and kNN probes are still compared.
     */
    tableChecksums: withDefault(boolean(), false),
  },
  { strict: true },
);
export type BaseBackupSettings = Infer<typeof BaseBackupSettings>;

export const Schedule = object(
  {
    id: string({ pattern: /^[a-z0-9][a-z0-9_-]{0,62}$/, hint: 'schedule ids use lowercase letters, digits, "-" and "_"' }),
    /** Five- or six-field cron expression, evaluated in `timezone`. */
    cron: string({ min: 1 }),
    /** Default: tree for files targets, logical otherwise (see parseConfig). */
    kind: withDefault(oneOf(['logical', 'base', 'snapshot', 'export', 'incremental', 'tree'] as const), 'logical'),
    /** files: read and hash every file again on this schedule, instead of trusting the parent snapshot's size, mtime and inode. */
    fullRehash: optional(boolean()),
    timezone: withDefault(string({ min: 1 }), 'UTC'),
    /** Fire a slot missed while the scheduler was down (like systemd's Persistent=true). */
    catchUp: withDefault(boolean(), true),
  },
  { strict: true },
);
export type Schedule = Infer<typeof Schedule>;

const DirectorySource = object(
  {
    kind: literal('directory'),
    path: string({ min: 1 }),
    /** Globs relative to `path`: a file is taken when it matches an include (or none are given) and no exclude. */
    include: optional(array(string({ min: 1 }))),
    exclude: optional(array(string({ min: 1 }))),
  },
  { strict: true },
);
const S3Source = object(
  {
    kind: literal('s3'),
    endpoint: string({ pattern: /^https?:\/\/[^/]+\/?$/, hint: 'an http(s)://host[:port] URL' }),
    bucket: string({ min: 3 }),
    /** Key prefix ('' or ending in '/'): keys below it become the tree's paths. */
    prefix: optional(string({ pattern: /^(|.*\/)$/, hint: "empty or ending in '/'" })),
    region: optional(string({ min: 1 })),
    accessKeyEnv: envName,
    secretKeyEnv: envName,
  },
  { strict: true },
);
/** An Ollama models directory (the one holding manifests/ and blobs/). */
const OllamaSource = object({ kind: literal('ollama'), path: string({ min: 1 }) }, { strict: true });

const SOURCE_KINDS = { directory: DirectorySource, s3: S3Source, ollama: OllamaSource } as const;
export type FilesSourceSetting = Infer<typeof DirectorySource> | Infer<typeof S3Source> | Infer<typeof OllamaSource>;

/** One of the source kinds, chosen by `kind`, so that an error names the fields of that kind. */
const FilesSourceSetting: Schema<FilesSourceSetting> = {
  parse(input: unknown, path = ''): FilesSourceSetting {
    const kind = typeof input === 'object' && input !== null ? (input as { kind?: unknown }).kind : undefined;
    const schema = typeof kind === 'string' && Object.hasOwn(SOURCE_KINDS, kind) ? SOURCE_KINDS[kind as keyof typeof SOURCE_KINDS] : undefined;
    if (!schema) throw new SchemaError([{ path: path ? `${path}.kind` : 'kind', message: `expected one of ${Object.keys(SOURCE_KINDS).join(', ')}, got ${JSON.stringify(kind)}` }]);
    return schema.parse(input, path);
  },
};

/** files targets: where the files come from and how they are read. */
export const FilesTargetSettings = object(
  {
    source: FilesSourceSetting,
    /** Unreadable files fail the backup (SOURCE_UNREADABLE) instead of being reported in it. */
    strict: withDefault(boolean(), false),
    /** Files read at once (default: the snapshotter's). */
    concurrency: optional(number({ integer: true, min: 1, max: 64 })),
  },
  { strict: true },
);
export type FilesTargetSettings = Infer<typeof FilesTargetSettings>;

export const Target = object(
  {
    name: string({ pattern: TARGET_NAME_PATTERN, hint: TARGET_NAME_HINT }),
    engine: oneOf(['pg', 'qdrant', 'files'] as const),
    postgres: optional(PostgresConnection),
    qdrant: optional(QdrantConnection),
    files: optional(FilesTargetSettings),
    schedules: withDefault(array(Schedule), []),
    retention: optional(Retention),
    compression: optional(oneOf(COMPRESSIONS)),
    compressionLevel: optional(number({ integer: true, min: -7, max: 22 })),
    encrypt: optional(boolean()),
    verify: optional(boolean()),
    /** Per-table checksums at backup time, compared after restore (one extra read of the data). */
    tableChecksums: withDefault(boolean(), true),
    /** Alert when no verified backup is newer than this (default: twice the longest schedule gap). */
    expectedWithinMinutes: optional(number({ min: 1 })),
    /** pg: continuous WAL archiving (needed for point-in-time recovery). */
    wal: optional(WalArchiving),
    /** pg: base backup settings. */
    baseBackup: optional(BaseBackupSettings),
  },
  { strict: true },
);
export type Target = Infer<typeof Target>;

/** Local work of the pg agent and verifier: WAL spool, restored data directories, sandboxes. */
export const PgLocalSection = object(
  {
    /** WAL spool (<workDir>/wal/<target>), point-in-time restores (<workDir>/restores/…), verifier scratch. */
    workDir: withDefault(string({ min: 1 }), './.tidemark/pg'),
    /** The OS user pg_receivewal and restored servers run as when Tidemark runs as root. */
    osUser: withDefault(string({ min: 1 }), 'postgres'),
    /** How often the storage service checks the WAL archive for gaps. */
    archiveCheckIntervalSeconds: withDefault(number({ min: 1 }), 300),
    /** The address a point-in-time restore's server listens on: one IP address or host name, or * for all. */
    restoreListenAddress: withDefault(string({ pattern: /^(\*|[A-Za-z0-9:][A-Za-z0-9.:-]{0,252})$/, hint: 'one IP address or host name, or * for every address' }), '127.0.0.1'),
  },
  { strict: true },
);
export type PgLocalSection = Infer<typeof PgLocalSection>;

/** Local work of the files agent and verifier. */
export const FilesLocalSection = object(
  {
    /** Default restores (<workDir>/restores/<target>-<artifact>) and verifier scratch (<workDir>/scratch). */
    workDir: withDefault(string({ min: 1 }), './.tidemark/files'),
    /** Chunks fetched at once by a restore. */
    restoreConcurrency: withDefault(number({ integer: true, min: 1, max: 64 }), 8),
  },
  { strict: true },
);
export type FilesLocalSection = Infer<typeof FilesLocalSection>;

export const StorageSection = object(
  {
    type: withDefault(oneOf(['fs', 's3'] as const), 'fs'),
    /** fs: root directory. */
    root: withDefault(string({ min: 1 }), './.tidemark/storage'),
    /** s3: endpoint URL, e.g. http://minio:9000 */
    endpoint: optional(string({ pattern: /^https?:\/\/[^/]+\/?$/, hint: 'an http(s)://host[:port] URL' })),
    bucket: withDefault(string({ min: 3 }), 'tidemark'),
    region: withDefault(string({ min: 1 }), 'us-east-1'),
    prefix: optional(string()),
    accessKeyEnv: withDefault(string({ min: 1 }), 'TIDEMARK_S3_ACCESS_KEY'),
    secretKeyEnv: withDefault(string({ min: 1 }), 'TIDEMARK_S3_SECRET_KEY'),
    /** Remove data objects with no manifest once older than this (an interrupted backup's leftovers). */
    orphanGraceMinutes: withDefault(number({ min: 0 }), 60),
    /** s3: longest wait for a call that moves no data (stat, list page, remove, starting or completing an upload, a download's first byte). */
    requestTimeoutSeconds: withDefault(number({ min: 0.1 }), 60),
    /** s3: an upload or download that moves no bytes this long fails (retryable); a transfer that keeps moving is never cut off. */
    stallSeconds: withDefault(number({ min: 0.1 }), 60),
  },
  { strict: true },
);

export const EncryptionSection = object(
  {
    /** File holding the 32-byte key (64 hex chars or base64). */
    keyFile: optional(string({ min: 1 })),
    /** Environment variable holding the key. Default TIDEMARK_ENCRYPTION_KEY. */
    keyEnv: withDefault(string({ min: 1 }), 'TIDEMARK_ENCRYPTION_KEY'),
    /** A name for the key, recorded in manifests (default: a fingerprint). */
    keyId: optional(string({ min: 1, max: 100 })),
    /** Older keys, still needed to read older artifacts. */
    oldKeyFiles: withDefault(array(string({ min: 1 })), []),
  },
  { strict: true },
);

export const Webhook = object(
  {
    url: string({ pattern: /^https?:\/\//, hint: 'an http(s) URL' }),
    minSeverity: withDefault(oneOf(SEVERITIES), 'warning'),
  },
  { strict: true },
);

export const TidemarkConfig = object(
  {
    nats: withDefault(object({ url: withDefault(string({ min: 1 }), 'nats://127.0.0.1:4222') }, { strict: true }), () => ({ url: 'nats://127.0.0.1:4222' })),
    storage: withDefault(StorageSection, () => StorageSection.parse({})),
    encryption: optional(EncryptionSection),
    defaults: withDefault(
      object(
        {
          compression: optional(oneOf(COMPRESSIONS)),
          encrypt: withDefault(boolean(), false),
          verify: withDefault(boolean(), true),
          retention: withDefault(Retention, () => Retention.parse({})),
        },
        { strict: true },
      ),
      () => ({ encrypt: false, verify: true, retention: Retention.parse({}) }),
    ),
    /**
     * How services publish events to each other: msgpack (default) or json, for deployments that
     * read every event with plain NATS tools. Alerts are JSON either way; consumers read both.
     */
    events: withDefault(
      object({ encoding: withDefault(oneOf(EVENT_ENCODINGS), 'msgpack') }, { strict: true }),
      () => ({ encoding: 'msgpack' as const }),
    ),
    /**
     * How every service's consumers retry and when they give up on a job. A failed delivery with
     * attempts left is redelivered after `backoff` (initialSeconds doubling to maxSeconds); a job
     * that reports no progress (bytes moved, WAL replayed, rows checked) for its kind's
     * `stallSeconds` is stopped with TIMEOUT and retried. TIDEMARK_MAX_DELIVER overrides maxDeliver.
     */
    consumers: withDefault(
      object(
        {
          maxDeliver: withDefault(number({ integer: true, min: 1 }), DEFAULT_CONSUMER_SETTINGS.maxDeliver),
          backoff: withDefault(
            object(
              {
                initialSeconds: withDefault(number({ min: 0 }), DEFAULT_CONSUMER_SETTINGS.backoff.initialSeconds),
                maxSeconds: withDefault(number({ min: 0 }), DEFAULT_CONSUMER_SETTINGS.backoff.maxSeconds),
              },
              { strict: true },
            ),
            () => ({ ...DEFAULT_CONSUMER_SETTINGS.backoff }),
          ),
          stallSeconds: withDefault(
            object(
              {
                backup: withDefault(number({ min: 0.1 }), DEFAULT_CONSUMER_SETTINGS.stallSeconds.backup),
                restore: withDefault(number({ min: 0.1 }), DEFAULT_CONSUMER_SETTINGS.stallSeconds.restore),
                verify: withDefault(number({ min: 0.1 }), DEFAULT_CONSUMER_SETTINGS.stallSeconds.verify),
                other: withDefault(number({ min: 0.1 }), DEFAULT_CONSUMER_SETTINGS.stallSeconds.other),
              },
              { strict: true },
            ),
            () => ({ ...DEFAULT_CONSUMER_SETTINGS.stallSeconds }),
          ),
        },
        { strict: true },
      ),
      () => ({
        maxDeliver: DEFAULT_CONSUMER_SETTINGS.maxDeliver,
        backoff: { ...DEFAULT_CONSUMER_SETTINGS.backoff },
        stallSeconds: { ...DEFAULT_CONSUMER_SETTINGS.stallSeconds },
      }),
    ),
    /** Where the verifier restores artifacts to prove them. */
    sandbox: optional(object({ postgres: optional(PostgresConnection), qdrant: optional(QdrantConnection) }, { strict: true })),
    alerts: withDefault(
      object(
        {
          webhooks: withDefault(array(Webhook), []),
          /** Identical alerts inside this window are delivered once. */
          dedupeWindowMinutes: withDefault(number({ min: 0 }), 60),
          /** How often the missed-backup watchdog looks. */
          watchdogIntervalSeconds: withDefault(number({ min: 1 }), 60),
        },
        { strict: true },
      ),
      () => ({ webhooks: [], dedupeWindowMinutes: 60, watchdogIntervalSeconds: 60 }),
    ),
    retention: withDefault(
      object({ intervalSeconds: withDefault(number({ min: 1 }), 3600) }, { strict: true }),
      () => ({ intervalSeconds: 3600 }),
    ),
    pg: withDefault(PgLocalSection, () => PgLocalSection.parse({})),
    files: withDefault(FilesLocalSection, () => FilesLocalSection.parse({})),
    targets: withDefault(array(Target), []),
  },
  { strict: true },
);
export type TidemarkConfig = Infer<typeof TidemarkConfig>;
