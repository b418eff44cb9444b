// Streamed physical base backups: `pg_basebackup -D - -Ft -X fetch` writes the whole cluster as ONE
// tar on stdout (no copy on local disk), with the WAL needed for consistency in pg_wal/ inside it.
// PostgreSQL 15 appends its own `backup_manifest` (SHA256 per file here) as the last member of that
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
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TidemarkError } from '@tidemark/contracts';
import { libpqEnv, type PostgresConnection } from '@tidemark/config';
import { openClient, toPgError } from './connection.js';
import { describeExit, spawnTool, toolEnvironment, type PgTool } from './tools.js';

// tools.ts only names pg_dump/pg_restore in PgTool; spawnTool and pgToolPath work for any pg binary.
export const PG_BASEBACKUP: PgTool = 'pg_basebackup';

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
  readonly serverVersion: string;
  readonly serverVersionNum: number;
  /** pg_control_system().system_identifier, as a decimal string (it is a 64-bit integer). */
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
  /** The pgvector version installed in the connection's database, or null. */
  readonly pgvectorVersion: string | null;
  /** Size of PostgreSQL's backup_manifest inside the tar. */
  readonly manifestBytes: number;
  /** Total bytes of the tar stream. */
  readonly bytes: number;
}

/** Parses a PostgreSQL LSN ("16/B374D848") into a bigint for comparisons. */

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

/** Watches a base backup tar pass by and keeps only backup_label and the tail of backup_manifest. */
class BackupObserver implements TarVisitor {
  labelText: string | undefined;
  manifestBytes = 0;
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
}

// ---------------------------------------------------------------------------------------------
// The session

export interface BaseBackupOptions {
  readonly label: string;
  /** Throttle, in kB/s (pg_basebackup --max-rate accepts 32 kB/s to 1 GB/s). */
  readonly maxRateKbps?: number;
  /** Aborting kills pg_basebackup; the output stream then errors with SHUTTING_DOWN. */
  readonly signal?: AbortSignal;
  /** Where secrets (passwordEnv) and TIDEMARK_PG_BIN are read from; process.env by default. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface BaseBackupSession {
  /** One tar stream: the data directory, pg_wal/ with the WAL needed, then backup_manifest. Ends only after pg_basebackup exited cleanly; errors with DUMP_FAILED otherwise. */
  readonly output: Readable;
  /** Resolves once the backup has completed (it needs the stop LSN); rejects when it fails. */
  readonly facts: Promise<BaseBackupFacts>;
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

async function serverFacts(conn: PostgresConnection, env: NodeJS.ProcessEnv): Promise<ServerFacts> {
  const client = await openClient(conn, conn.database, 'source', env);
  try {
    const { rows } = await client.query<{ version: string; num: string; sysid: string; seg: string; vector: string | null }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
              current_setting('wal_segment_size') AS seg,
              (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS vector`,
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
    };
  } catch (error) {
    throw toPgError(error, 'source', `reading the facts of ${conn.host}:${conn.port}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function baseBackupArgs(options: Pick<BaseBackupOptions, 'label' | 'maxRateKbps'>): string[] {
  const args = ['-D', '-', '-Ft', '-X', 'fetch', '--checkpoint=fast', `--label=${options.label}`, '--manifest-checksums=SHA256', '--no-password'];
  if (options.maxRateKbps !== undefined) {
    const rate = options.maxRateKbps;
    if (!Number.isInteger(rate) || rate < 32 || rate > 1024 * 1024) {
      throw new TidemarkError('CONFIG_INVALID', `the base backup rate limit must be a whole number of kB/s between 32 and 1048576, got ${rate}`);
    }
    args.push(`--max-rate=${rate}k`);
  }
  return args;
}

export async function startBaseBackup(conn: PostgresConnection, options: BaseBackupOptions): Promise<BaseBackupSession> {
  const env = options.env ?? process.env;
  const args = baseBackupArgs(options);
  if (options.signal?.aborted) throw new TidemarkError('SHUTTING_DOWN', 'the base backup was interrupted by shutdown; another agent will retry it');
  const server = await serverFacts(conn, env);

  // The password reaches pg_basebackup only through PGPASSWORD in its environment.
  const tool = spawnTool(PG_BASEBACKUP, args, toolEnvironment(libpqEnv(conn, env), env), { stdin: false, stdout: true }, env);
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

  const output = new PassThrough();
  let failure: TidemarkError | undefined;
  const fail = (error: TidemarkError) => {
    failure ??= error;
    tool.kill();
    output.destroy(failure);
  };
  const piped = pipeline(tool.child.stdout as Readable, watch, output, { end: false }).then(
    () => undefined,
    (error: unknown) => error,
  );
  const onAbort = () => fail(new TidemarkError('SHUTTING_DOWN', 'the base backup was interrupted by shutdown; another agent will retry it'));
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const facts = (async (): Promise<BaseBackupFacts> => {
    const exit = await tool.exited;
    const pipeError = await piped;
    options.signal?.removeEventListener('abort', onAbort);
    // A malformed stream (our parser's TidemarkError) makes pg_basebackup die of a broken pipe, so
    // it explains more; otherwise pg_basebackup's own complaint explains more than a short tar does.
    if (!failure && pipeError instanceof TidemarkError) fail(pipeError);
    if (!failure && (exit.code !== 0 || tool.reportedError)) {
      fail(new TidemarkError('DUMP_FAILED', `${describeExit(PG_BASEBACKUP, exit, tool.stderrTail())}; check that the user has the REPLICATION attribute, that pg_hba.conf allows a replication connection and that max_wal_senders is free`));
    }
    if (!failure && pipeError !== undefined) {
      fail(new TidemarkError('DUMP_FAILED', `reading pg_basebackup output failed: ${(pipeError as Error).message}`));
    }
    if (failure) throw failure;
    try {
      reader.finish();
      if (observer.labelText === undefined) throw new TidemarkError('INTEGRITY_FORMAT', 'the base backup stream has no backup_label; check the pg_basebackup version');
      const label = parseBackupLabel(observer.labelText);
      const ranges = parseManifestWalRanges(observer.manifestTailText());
      const last = ranges.reduce<(typeof ranges)[number] | undefined>((best, range) => (best === undefined || range.timeline > best.timeline ? range : best), undefined);
      if (observer.manifestBytes === 0 || last === undefined) throw new TidemarkError('INTEGRITY_FORMAT', 'the base backup stream has no backup_manifest with WAL ranges; pg_basebackup 13 or newer is needed');
      const result: BaseBackupFacts = {
        ...label,
        stopLsn: last.endLsn,
        stopTimeline: last.timeline,
        ...server,
        manifestBytes: observer.manifestBytes,
        bytes: produced,
      };
      output.end();
      return result;
    } catch (error) {
      const converted = error instanceof TidemarkError ? error : new TidemarkError('DUMP_FAILED', `reading the base backup stream failed: ${(error as Error).message}`);
      fail(converted);
      throw converted;
    }
  })();
  facts.catch(() => undefined);
  if (options.signal?.aborted) onAbort();

  return { output, facts, bytesProduced: () => produced, abort: (reason) => fail(reason) };
}
