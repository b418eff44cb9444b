// Streamed physical base backups: `pg_basebackup -D - -Ft -X fetch` writes the whole cluster as ONE
// tar on stdout (no copy on local disk), with the WAL needed for consistency in pg_wal/ inside it.
// PostgreSQL 15 appends its own `backup_manifest` (CRC32C per file) as the last member of that
// tar when writing to stdout, so the manifest travels with the data and pg_verifybackup can check
// an extracted copy later.
//
// The facts come from two places. The backup's own start/stop LSN, timelines and label are read
// from the tar as it passes (a small header parser that looks only at entry names; it keeps the
// tiny `backup_label` and the last 64 KiB of `backup_manifest`, whose "WAL-Ranges" give the stop
// LSN): they are the exact values of this backup, with no race against another backup as
// pg_stat_progress_basebackup or pg_control_checkpoint() would have. Version, system identifier
// and pgvector come from a normal connection opened before the backup starts (so a wrong password
// fails fast, before pg_basebackup is spawned).
//
// Throttling: --max-rate limits how fast the server's walsender reads and sends the data files
// (the production cost is mostly that I/O), and `nice` lowers the priority of the pg_basebackup
// client process; our encode pipeline runs at normal priority. Server-side compression cannot be
// combined with a tar on stdout in PostgreSQL 15 (see baseBackupArgs), and is refused.
import { createHash } from 'node:crypto';
import { setPriority } from 'node:os';
import { Transform, type Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import { libpqEnv, type PostgresConnection } from '@tidemark/config';
import { openClient, toPgError } from './connection.js';
import { describeExit, guardToolOutput, spawnTool, toolEnvironment, type PgTool, type RunningTool, type ToolExit } from './tools.js';

// tools.ts only names pg_dump/pg_restore in PgTool; spawnTool and pgToolPath work for any pg binary.
export const PG_BASEBACKUP: PgTool = 'pg_basebackup';

/** Manifest `format` of a stored base backup: the plain tar pg_basebackup wrote, before our pipeline. */
export const BASE_BACKUP_FORMAT = 'pg_basebackup-tar';

// ---------------------------------------------------------------------------------------------
// A streaming tar reader: ustar headers (name + prefix), regular files, directories, symlinks
// reported as such; pax ('x', 'g') and GNU long-name ('L', 'K') entries are skipped. Data is handed
// to the visitor chunk by chunk, never buffered.

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface TarEntry {
  readonly name: string;
  readonly type: TarEntryType;
  /** The raw typeflag character ('0', '5', '2', …). */
  readonly typeflag: string;
  readonly size: number;
  readonly mode: number;
  readonly linkname: string;
}

export interface TarVisitor {
  entry?(entry: TarEntry): void | Promise<void>;
  data?(entry: TarEntry, chunk: Buffer): void | Promise<void>;
  entryEnd?(entry: TarEntry): void | Promise<void>;
}

const BLOCK = 512;
const SKIPPED_TYPES = new Set(['x', 'g', 'L', 'K']);

const cString = (block: Buffer, start: number, length: number): string => {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? length : nul).toString('utf8');
};

function tarNumber(block: Buffer, start: number, length: number): number {
  const first = block[start] ?? 0;
  if (first & 0x80) {
    // GNU base-256 (files of 8 GiB and more): big-endian after the marker bit.
    let value = first & 0x7f;
    for (let i = start + 1; i < start + length; i += 1) value = value * 256 + (block[i] ?? 0);
    return value;
  }
  const text = cString(block, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TidemarkError('INTEGRITY_FORMAT', `the tar stream has an invalid numeric header field "${text}"; the backup is not a valid tar archive`);
  return parseInt(text, 8);
}

export class TarReader {
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private state: 'header' | 'data' | 'padding' | 'done' = 'header';
  private current: TarEntry | undefined;
  private skipping = false;
  private remaining = 0;
  private padding = 0;
  private zeroBlocks = 0;

  constructor(private readonly visitor: TarVisitor) {}

  /** Whether the end-of-archive marker (two zero blocks) has been read. */
  get complete(): boolean {
    return this.state === 'done';
  }

  async push(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, chunk.length - offset);
        const entry = this.current as TarEntry;
        if (!this.skipping) await this.visitor.data?.(entry, chunk.subarray(offset, offset + n));
        offset += n;
        this.remaining -= n;
        if (this.remaining === 0) await this.endEntry();
      } else if (this.state === 'padding') {
        const n = Math.min(this.padding, chunk.length - offset);
        offset += n;
        this.padding -= n;
        if (this.padding === 0) this.state = 'header';
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + n);
        this.headerFill += n;
        offset += n;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          await this.readHeader();
        }
      }
    }
    // Anything after the end-of-archive marker is blocking-factor padding.
  }

  /** Fails with INTEGRITY_TRUNCATED unless the archive ended properly. */
  finish(): void {
    if (this.state !== 'done') {
      throw new TidemarkError('INTEGRITY_TRUNCATED', `the tar stream ends early${this.current ? ` inside ${this.current.name}` : ''}; the backup is incomplete, take a new one`);
    }
  }

  private async endEntry(): Promise<void> {
    const entry = this.current as TarEntry;
    if (!this.skipping) await this.visitor.entryEnd?.(entry);
    this.current = undefined;
    this.padding = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private async readHeader(): Promise<void> {
    const block = this.header;
    if (block.every((byte) => byte === 0)) {
      this.zeroBlocks += 1;
      if (this.zeroBlocks >= 2) this.state = 'done';
      return;
    }
    this.zeroBlocks = 0;
    const stored = tarNumber(block, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i += 1) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    if (sum !== stored) throw new TidemarkError('INTEGRITY_FORMAT', 'a tar header checksum does not match; the backup stream is corrupt or not a tar archive');
    const typeflag = String.fromCharCode(block[156] ?? 0);
    const ustar = cString(block, 257, 6).startsWith('ustar');
    const prefix = ustar ? cString(block, 345, 155) : '';
    const baseName = cString(block, 0, 100);
    const name = prefix ? `${prefix}/${baseName}` : baseName;
    const type: TarEntryType = typeflag === '0' || typeflag === '\0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : typeflag === '2' ? 'symlink' : 'other';
    // Directories and links carry no data whatever their size field says.
    const size = type === 'file' || SKIPPED_TYPES.has(typeflag) ? tarNumber(block, 124, 12) : 0;
    const entry: TarEntry = { name, type, typeflag, size, mode: tarNumber(block, 100, 8), linkname: cString(block, 157, 100) };
    this.current = entry;
    this.skipping = SKIPPED_TYPES.has(typeflag);
    if (!this.skipping) await this.visitor.entry?.(entry);
    this.remaining = size;
    if (size === 0) await this.endEntry();
    else this.state = 'data';
  }
}

// ---------------------------------------------------------------------------------------------
// Facts

export interface BaseBackupFacts {
  readonly label: string;
  /** LSNs as PostgreSQL prints them, e.g. "0/2000028". */
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly checkpointLsn: string;
  readonly startTimeline: number;
  readonly stopTimeline: number;
  /** START TIME from backup_label, as PostgreSQL wrote it ("2026-11-22 10:15:00 UTC"). */
  readonly startTime: string;
  /**
   * START TIME as ISO 8601. The label is written in the server's log_timezone; when that zone
   * cannot be resolved here, the agent's clock just before pg_basebackup was spawned stands in.
   */
  readonly startedAt: string;
  readonly serverVersion: string;
  readonly serverVersionNum: number;
  /** pg_control_system().system_identifier, as a decimal string (it is a 64-bit integer). */
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
  /** The pgvector version installed in the connection's database, or null. */
  readonly pgvectorVersion: string | null;
  /** Size of PostgreSQL's backup_manifest inside the tar. */
  readonly manifestBytes: number;
  /** sha256 (hex) of the backup_manifest member, hashed as it passed. */
  readonly manifestSha256: string;
  /** Total bytes of the tar stream. */
  readonly bytes: number;
}

interface LabelFacts {
  label: string;
  startLsn: string;
  checkpointLsn: string;
  startTimeline: number;
  startTime: string;
}

/** Reads PostgreSQL's backup_label file. */
export function parseBackupLabel(text: string): LabelFacts {
  const field = (name: string): string | undefined => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const start = /^([0-9A-F]+\/[0-9A-F]+)/i.exec(field('START WAL LOCATION') ?? '')?.[1];
  const checkpoint = field('CHECKPOINT LOCATION');
  const timeline = Number(field('START TIMELINE'));
  if (start === undefined || checkpoint === undefined || !Number.isInteger(timeline)) {
    throw new TidemarkError('INTEGRITY_FORMAT', 'the backup_label in the base backup lacks its start location or timeline; check the pg_basebackup version');
  }
  return { label: field('LABEL') ?? '', startLsn: start, checkpointLsn: checkpoint, startTimeline: timeline, startTime: field('START TIME') ?? '' };
}

/** The UTC offset (ms) of an IANA zone at an instant; throws RangeError for a zone ICU does not know. */
function zoneOffsetMs(instant: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(instant));
  const part = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value);
  const local = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
  return local - Math.floor(instant / 1000) * 1000;
}

/**
 * backup_label's START TIME ("2026-11-22 10:15:00 CET": strftime %Z in the server's log_timezone)
 * as ISO 8601. Abbreviations are ambiguous, so only UTC/GMT and numeric zones ("+03", "-0330") are
 * read from the text; any other is resolved through `logTimezone` (an IANA name, as PostgreSQL
 * reports it). Undefined when neither works.
 */
export function startTimeToIso(startTime: string, logTimezone?: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?: (\S+))?$/.exec(startTime.trim());
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, zone = ''] = match;
  const wall = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  if (/^(UTC|UCT|GMT|Z|Zulu)$/i.test(zone)) return new Date(wall).toISOString();
  const numeric = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone);
  if (numeric) {
    const minutes = (Number(numeric[2]) * 60 + Number(numeric[3] ?? 0)) * (numeric[1] === '-' ? -1 : 1);
    return new Date(wall - minutes * 60_000).toISOString();
  }
  if (!logTimezone) return undefined;
  try {
    // The instant whose wall-clock time in the zone is `wall`: two rounds settle DST edges.
    let instant = wall - zoneOffsetMs(wall, logTimezone);
    instant = wall - zoneOffsetMs(instant, logTimezone);
    return new Date(instant).toISOString();
  } catch {
    return undefined;
  }
}

/** The WAL ranges from (the tail of) a backup_manifest: [{timeline, start, end}]. */
export function parseManifestWalRanges(tail: string): { timeline: number; startLsn: string; endLsn: string }[] {
  const section = tail.slice(tail.lastIndexOf('"WAL-Ranges"'));
  const ranges: { timeline: number; startLsn: string; endLsn: string }[] = [];
  const pattern = /\{\s*"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)",\s*"End-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)"\s*\}/gi;
  for (const match of section.matchAll(pattern)) ranges.push({ timeline: Number(match[1]), startLsn: match[2] as string, endLsn: match[3] as string });
  return ranges;
}

const LABEL_LIMIT = 64 * 1024;
const MANIFEST_TAIL = 64 * 1024;

/** Watches a base backup tar pass by and keeps only backup_label and the tail (and hash) of backup_manifest. */
class BackupObserver implements TarVisitor {
  labelText: string | undefined;
  manifestBytes = 0;
  private readonly manifestHash = createHash('sha256');
  private manifestTail = Buffer.alloc(0);
  private labelChunks: Buffer[] = [];
  private labelLength = 0;

  entry(entry: TarEntry): void {
    if (entry.name === 'backup_label' && entry.size > LABEL_LIMIT) throw new TidemarkError('INTEGRITY_FORMAT', `the backup_label in the base backup is ${entry.size} bytes; expected a few hundred`);
  }

  data(entry: TarEntry, chunk: Buffer): void {
    if (entry.name === 'backup_label') {
      this.labelChunks.push(Buffer.from(chunk));
      this.labelLength += chunk.length;
    } else if (entry.name === 'backup_manifest') {
      this.manifestBytes += chunk.length;
      this.manifestHash.update(chunk);
      const joined = Buffer.concat([this.manifestTail, chunk]);
      this.manifestTail = Buffer.from(joined.subarray(Math.max(0, joined.length - MANIFEST_TAIL)));
    }
  }

  entryEnd(entry: TarEntry): void {
    if (entry.name === 'backup_label') this.labelText = Buffer.concat(this.labelChunks, this.labelLength).toString('utf8');
  }

  manifestTailText(): string {
    return this.manifestTail.toString('utf8');
  }

  manifestSha256(): string {
    return this.manifestHash.digest('hex');
  }
}

// ---------------------------------------------------------------------------------------------
// The session

export type ServerCompression = 'none' | 'zstd';

export interface BaseBackupThrottle {
  /** pg_basebackup --max-rate, in kB/s (32 kB/s to 1 GB/s). */
  readonly maxRateKbps?: number | undefined;
  /** Process priority (nice 0..19) of the pg_basebackup client; 0 leaves it alone. */
  readonly nice?: number | undefined;
  /** Refused unless 'none' (see baseBackupArgs). */
  readonly serverCompression?: ServerCompression | undefined;
  readonly serverCompressionWorkers?: number | undefined;
  /** The starting checkpoint: 'fast' by default, 'spread' by default when a rate limit is set. */
  readonly checkpoint?: 'fast' | 'spread' | undefined;
}

export interface BaseBackupOptions extends BaseBackupThrottle {
  readonly label: string;
  /** Aborting kills pg_basebackup; the output stream then errors with SHUTTING_DOWN. */
  readonly signal?: AbortSignal | undefined;
  /** Where secrets (passwordEnv) and TIDEMARK_PG_BIN are read from; process.env by default. */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** The clock for startedAt when backup_label's time cannot be resolved; Date by default. */
  readonly clock?: (() => Date) | undefined;
}

export interface BaseBackupSession {
  /** One tar stream: the data directory, pg_wal/ with the WAL needed, then backup_manifest. Ends only after pg_basebackup exited cleanly; errors with DUMP_FAILED otherwise. */
  readonly output: Readable;
  /** Resolves once the backup has completed (it needs the stop LSN); rejects when it fails. */
  readonly facts: Promise<BaseBackupFacts>;
  /** pg_basebackup's process id (undefined when it could not be spawned). */
  readonly pid: number | undefined;
  bytesProduced(): number;
  abort(reason: TidemarkError): void;
}

interface ServerFacts {
  serverVersion: string;
  serverVersionNum: number;
  systemIdentifier: string;
  walSegmentSize: number;
  pgvectorVersion: string | null;
}

async function serverFacts(conn: PostgresConnection, env: NodeJS.ProcessEnv): Promise<ServerFacts & { logTimezone: string }> {
  const client = await openClient(conn, conn.database, 'source', env);
  try {
    const { rows } = await client.query<{ version: string; num: string; sysid: string; seg: string; vector: string | null; tz: string }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
              current_setting('wal_segment_size') AS seg,
              (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector,
              current_setting('log_timezone') AS tz`,
    );
    const row = rows[0];
    if (row === undefined) throw new TidemarkError('INTERNAL', 'the server returned no facts row');
    const segment = /^(\d+)(kB|MB|GB)?$/.exec(row.seg);
    const unit = segment?.[2] === 'GB' ? 1024 ** 3 : segment?.[2] === 'MB' ? 1024 ** 2 : segment?.[2] === 'kB' ? 1024 : 1;
    return {
      serverVersion: row.version,
      serverVersionNum: Number(row.num),
      systemIdentifier: row.sysid,
      walSegmentSize: Number(segment?.[1] ?? 0) * unit,
      pgvectorVersion: row.vector,
      logTimezone: row.tz,
    };
  } catch (error) {
    throw toPgError(error, 'source', `reading the facts of ${conn.host}:${conn.port}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * pg_basebackup's arguments. Throws CONFIG_INVALID for settings it cannot honour:
 *
 * Server-side compression is refused. With `-D - -Ft` PostgreSQL 15's pg_basebackup must parse the
 * archive to append backup_manifest to it, and it cannot parse a server-compressed one ("cannot
 * inject manifest into a compressed tar file"); the alternatives lose what a base backup needs:
 * `--no-manifest` drops the manifest (no pg_verifybackup, no WAL ranges), and a directory target
 * lands a full copy on local disk. The agent compresses with zstd itself (compression: zstd).
 */
export function baseBackupArgs(options: Pick<BaseBackupOptions, 'label'> & BaseBackupThrottle): string[] {
  // CRC32C per file (PostgreSQL's default) rather than SHA256: the walsender computes these on the
  // production server, CRC32C costs a fraction of the CPU, and it catches damage as well; tampering
  // is what our own sha256 and the encryption's authentication tags are for.
  // A throttled backup also spreads its starting checkpoint (like pgBackRest's start-fast=n), so the
  // burst of writes does not hit production either (it then waits up to checkpoint_timeout ×
  // checkpoint_completion_target to start); an unthrottled one asks for it at once.
  const checkpoint = options.checkpoint ?? (options.maxRateKbps === undefined ? 'fast' : 'spread');
  const args = ['-D', '-', '-Ft', '-X', 'fetch', `--checkpoint=${checkpoint}`, `--label=${options.label}`, '--manifest-checksums=CRC32C', '--no-password'];
  if (options.maxRateKbps !== undefined) {
    const rate = options.maxRateKbps;
    if (!Number.isInteger(rate) || rate < 32 || rate > 1024 * 1024) {
      throw new TidemarkError('CONFIG_INVALID', `the base backup rate limit must be a whole number of kB/s between 32 and 1048576, got ${rate}`);
    }
    args.push(`--max-rate=${rate}k`);
  }
  if (options.nice !== undefined && (!Number.isInteger(options.nice) || options.nice < 0 || options.nice > 19)) {
    throw new TidemarkError('CONFIG_INVALID', `baseBackup.nice must be a whole number from 0 to 19, got ${options.nice}`);
  }
  if (options.serverCompression !== undefined && options.serverCompression !== 'none') {
    throw new TidemarkError(
      'CONFIG_INVALID',
      `baseBackup.serverCompression "${options.serverCompression}" cannot be used: pg_basebackup streams the backup to the agent as one tar with its backup_manifest appended, ` +
        'and PostgreSQL 15 cannot append the manifest to a server-compressed tar ("cannot inject manifest into a compressed tar file"); ' +
        'set serverCompression: none (the agent compresses the stream itself, see the target\'s compression)',
    );
  }
  return args;
}

// pg_basebackup's complaints that no retry can fix, with what the operator should do.
const NOT_RETRYABLE: readonly { readonly pattern: RegExp; readonly code: 'SOURCE_AUTH_FAILED' | 'CONFIG_INVALID'; readonly advice: string }[] = [
  {
    pattern: /must be superuser or replication role|permission denied to start WAL sender|no pg_hba\.conf entry for replication connection|password authentication failed|authentication failed for user/i,
    code: 'SOURCE_AUTH_FAILED',
    advice: 'the backup user needs the REPLICATION attribute (ALTER ROLE <user> REPLICATION) and pg_hba.conf must allow it a "replication" connection',
  },
  {
    pattern: /WAL level not sufficient|wal_level must be/i,
    code: 'CONFIG_INVALID',
    advice: 'set wal_level = replica (or logical) on the source and restart it',
  },
];

function backupToolFailure(exit: ToolExit, tool: RunningTool): TidemarkError {
  const tail = tool.stderrTail();
  const described = describeExit(PG_BASEBACKUP, exit, tail);
  const known = NOT_RETRYABLE.find((k) => k.pattern.test(tail));
  if (known) return new TidemarkError(known.code, `${described}; ${known.advice}`);
  return new TidemarkError('DUMP_FAILED', `${described}; check that the user has the REPLICATION attribute, that pg_hba.conf allows a replication connection and that max_wal_senders is free`);
}

/** Lowers the process priority of `pid` (best effort: the process may already be gone). */
function lowerPriority(pid: number | undefined, nice: number | undefined): void {
  if (pid === undefined || nice === undefined || nice <= 0) return;
  try {
    setPriority(pid, nice);
  } catch {
    // ESRCH: it exited already; raising a nice value never needs privileges.
  }
}

export async function startBaseBackup(conn: PostgresConnection, options: BaseBackupOptions): Promise<BaseBackupSession> {
  const env = options.env ?? process.env;
  const args = baseBackupArgs(options);
  const shutdown = () => new TidemarkError('SHUTTING_DOWN', 'the base backup was interrupted by shutdown; another agent will retry it');
  if (options.signal?.aborted) throw shutdown();
  const { logTimezone, ...server } = await serverFacts(conn, env);
  if (options.signal?.aborted) throw shutdown();

  const spawnedAt = (options.clock ?? (() => new Date()))();
  // The password reaches pg_basebackup only through PGPASSWORD in its environment.
  const tool = spawnTool(PG_BASEBACKUP, args, toolEnvironment(libpqEnv(conn, env), env), { stdin: false, stdout: true }, env);
  lowerPriority(tool.child.pid, options.nice);
  const observer = new BackupObserver();
  const reader = new TarReader(observer);
  let produced = 0;
  const watch = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      produced += chunk.length;
      reader.push(chunk).then(
        () => done(null, chunk),
        (error: unknown) => done(error as Error),
      );
    },
  });
  const guarded = guardToolOutput(tool, [watch], { signal: options.signal, aborted: shutdown });

  const facts = (async (): Promise<BaseBackupFacts> => {
    const { exit, pipeError } = await guarded.settled;
    // Precedence: an abort (already recorded); then a malformed stream (our parser's
    // TidemarkError, which makes pg_basebackup die of a broken pipe, so it explains more); then
    // pg_basebackup's own complaint, which explains more than the short tar it leaves; then any
    // other broken pipe; then what the completed stream lacks.
    if (pipeError instanceof TidemarkError) guarded.fail(pipeError);
    if (exit.code !== 0 || tool.reportedError) guarded.fail(backupToolFailure(exit, tool));
    if (pipeError !== undefined) guarded.fail(new TidemarkError('DUMP_FAILED', `reading pg_basebackup output failed: ${(pipeError as Error).message}`, { cause: pipeError }));
    if (guarded.failure) throw guarded.failure;
    try {
      reader.finish();
      if (observer.labelText === undefined) throw new TidemarkError('INTEGRITY_FORMAT', 'the base backup stream has no backup_label; check the pg_basebackup version');
      const label = parseBackupLabel(observer.labelText);
      const ranges = parseManifestWalRanges(observer.manifestTailText());
      const last = ranges.reduce<(typeof ranges)[number] | undefined>((best, range) => (best === undefined || range.timeline > best.timeline ? range : best), undefined);
      if (observer.manifestBytes === 0 || last === undefined) throw new TidemarkError('INTEGRITY_FORMAT', 'the base backup stream has no backup_manifest with WAL ranges; pg_basebackup 13 or newer is needed');
      const result: BaseBackupFacts = {
        ...label,
        startedAt: startTimeToIso(label.startTime, logTimezone) ?? spawnedAt.toISOString(),
        stopLsn: last.endLsn,
        stopTimeline: last.timeline,
        ...server,
        manifestBytes: observer.manifestBytes,
        manifestSha256: observer.manifestSha256(),
        bytes: produced,
      };
      guarded.end();
      return result;
    } catch (error) {
      const converted = error instanceof TidemarkError ? error : new TidemarkError('DUMP_FAILED', `reading the base backup stream failed: ${(error as Error).message}`);
      guarded.fail(converted);
      throw converted;
    }
  })();
  facts.catch(() => undefined);

  return { output: guarded.output, facts, pid: tool.child.pid, bytesProduced: () => produced, abort: (reason) => guarded.fail(reason) };
}
