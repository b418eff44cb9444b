// The WAL a point-in-time restore replays comes from the agent, not from storage directly: the
// restored server's restore_command (scripts/wal-fetch.mjs) asks this local HTTP server, which
// reads the file's manifest, decodes (decrypts, decompresses, verifies) its data and streams it.
// Storage credentials and encryption keys stay in the agent; the restored cluster never sees them.
//
// Listens on 127.0.0.1, on a random port, under a random token: GET /<token>/<file>.
//   200  the file, exactly its size (a segment is the WAL segment size; an uploaded partial
//        segment is padded with zeros to it, as PostgreSQL expects a whole segment file);
//   404  the archive does not have it (the end of the archive, or a history file that does not exist);
//   500  anything else, with "CODE: message" as the body. Recorded as the restore's first error.
//   403  a request without the token (never 404: that would read as the end of the archive).
// A failure after the headers went out breaks the connection, so the fetch script never takes a
// short file for a whole one.
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TidemarkError, toErrorInfo, type WalFileManifest } from '@tidemark/contracts';
import { openDecoded, readAll, type WalArchive } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import type { Logger } from '@tidemark/runtime';

/**
 * Marks this server's own "not archived" answers. The fetch script ends recovery (exit 1) only on a
 * 404 carrying it: a 404 from anything else (another process on a reused port) must not end
 * recovery early.
 */
export const NOT_ARCHIVED_HEADERS = { 'x-tidemark-wal': 'not-archived' } as const;

/** The restore_command script, shipped beside the compiled module (dist/restore → ../../scripts). */
export const WAL_FETCH_SCRIPT = fileURLToPath(new URL('../../scripts/wal-fetch.mjs', import.meta.url));

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const HISTORY = /^[0-9A-F]{8}\.history$/;

export interface WalFetch {
  readonly file: string;
  /** What was served: the committed segment or history file, an uploaded partial segment, nothing, or an error. */
  readonly outcome: 'file' | 'partial' | 'missing' | 'error';
  readonly bytes: number;
  readonly ms: number;
  /** Decoded ahead of the request. */
  readonly prefetched?: boolean;
}

export interface WalServerOptions {
  readonly archive: WalArchive;
  readonly target: string;
  /** The base backup's cluster: WAL of any other system identifier is never served. */
  readonly systemIdentifier: string;
  readonly keys: KeyRing;
  /** The cluster's WAL segment size (the base backup's). */
  readonly walSegmentSize: number;
  /**
   * The last segment the base backup itself carries in pg_wal/. Beyond it, a segment the archive
   * lacks while it holds later ones of the same timeline is a gap: recovery is aborted
   * (WAL_MISSING) instead of ending early and promoting without the WAL after the gap.
   */
  readonly backupEndSegment?: string;
  /** Closed segments decoded ahead of replay (default 2; 0 turns it off). */
  readonly prefetch?: number;
  /** Called for every file recovery asked for: WAL being replayed is the restore's progress. */
  readonly onFetch?: (fetch: WalFetch) => void;
  readonly logger: Logger;
}

const DEFAULT_PREFETCH = 2;
/** Prefetched segments are held in memory: not with segment sizes above this. */
const MAX_PREFETCH_SEGMENT = 64 * 1024 * 1024;

export interface WalServer {
  /** http://127.0.0.1:PORT/TOKEN */
  readonly url: string;
  readonly fetches: readonly WalFetch[];
  /** Files delivered (200). */
  filesServed(): number;
  /** The first failure (other than a missing file): why recovery was aborted. */
  firstError(): TidemarkError | undefined;
  close(): Promise<void>;
}

interface SegmentName {
  readonly timeline: string;
  /** log * 2^32/segment size + seg, as a bigint for comparisons. */
  readonly position: bigint;
}

function segmentName(name: string, walSegmentSize: number): SegmentName | undefined {
  const match = SEGMENT.exec(name);
  if (!match) return undefined;
  const perLog = 0x1_0000_0000n / BigInt(walSegmentSize);
  return { timeline: match[1] as string, position: BigInt(`0x${match[2]}`) * perLog + BigInt(`0x${match[3]}`) };
}

function formatSegment(timeline: string, position: bigint, walSegmentSize: number): string {
  const perLog = 0x1_0000_0000n / BigInt(walSegmentSize);
  const hex = (value: bigint) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${timeline}${hex(position / perLog)}${hex(position % perLog)}`;
}

/** The name of the segment holding the last byte before `lsn` (the end of a range). */
export function segmentEndingAt(timeline: number, lsn: bigint, walSegmentSize: number): string {
  const perLog = 0x1_0000_0000n / BigInt(walSegmentSize);
  const position = (lsn > 0n ? lsn - 1n : 0n) / BigInt(walSegmentSize);
  const hex = (value: bigint) => value.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(BigInt(timeline))}${hex(position / perLog)}${hex(position % perLog)}`;
}

export async function startWalServer(options: WalServerOptions): Promise<WalServer> {
  const token = randomBytes(24).toString('base64url');
  const fetches: WalFetch[] = [];
  let firstError: TidemarkError | undefined;
  let listing: Promise<Set<string>> | undefined;
  // Closed segments decoded ahead of replay, so storage latency overlaps with PostgreSQL's work.
  // A failure is kept and reported only if PostgreSQL asks for that file.
  const prefetched = new Map<string, Promise<Buffer | undefined>>();
  const prefetchDepth = options.walSegmentSize <= MAX_PREFETCH_SEGMENT ? (options.prefetch ?? DEFAULT_PREFETCH) : 0;
  const log = options.logger.child({ component: 'wal-server' });

  const record = (fetch: WalFetch) => {
    fetches.push(fetch);
    options.onFetch?.(fetch);
    log.debug(fetch, 'WAL fetch');
  };
  const noteError = (error: unknown): TidemarkError => {
    const converted = error instanceof TidemarkError ? error : new TidemarkError('STORAGE_UNAVAILABLE', `reading WAL from storage failed: ${(error as Error).message}`, { cause: error });
    firstError ??= converted;
    return converted;
  };

  /** The first of `files` on `segment`'s timeline after it (closed segments only, or partials too). */
  const laterOnTimeline = (files: Iterable<string>, segment: SegmentName, closedOnly: boolean): string | undefined => {
    for (const file of files) {
      if (closedOnly && file.endsWith('.partial')) continue;
      const later = segmentName(file.replace(/\.partial$/, ''), options.walSegmentSize);
      if (later && later.timeline === segment.timeline && later.position > segment.position) return file;
    }
    return undefined;
  };

  /** Whether the archive holds a segment (or partial) of `missing`'s timeline after it: then `missing` is a gap. */
  const isGap = async (missing: SegmentName): Promise<string | undefined> => {
    listing ??= options.archive.list(options.target, options.systemIdentifier).then((files) => new Set(files.map((f) => f.file)));
    return laterOnTimeline(await listing, missing, false);
  };

  /** The decoded bytes of a committed closed segment, or undefined when it is not committed (yet). */
  const decodeWhole = async (file: string): Promise<Buffer | undefined> => {
    const manifest = await options.archive.readManifest(options.target, options.systemIdentifier, file);
    if (!manifest) return undefined;
    if (manifest.data.rawBytes !== options.walSegmentSize) return undefined; // served (and refused) the normal way
    try {
      return await readAll(await openDecoded(options.archive, manifest, options.keys));
    } catch (error) {
      throw error instanceof TidemarkError ? new TidemarkError(error.code, `archived WAL ${file}: ${error.message}`, { cause: error, retryable: error.retryable }) : error;
    }
  };

  /** After `served`, keeps the next `prefetchDepth` segments of its timeline decoding; drops what replay has passed. */
  const prefetchAfter = (served: SegmentName) => {
    for (const name of prefetched.keys()) {
      const ahead = segmentName(name, options.walSegmentSize);
      if (!ahead || ahead.timeline !== served.timeline || ahead.position <= served.position) prefetched.delete(name);
    }
    for (let step = 1n; step <= BigInt(prefetchDepth); step += 1n) {
      const name = formatSegment(served.timeline, served.position + step, options.walSegmentSize);
      if (prefetched.has(name)) continue;
      const loading = decodeWhole(name);
      loading.catch(() => undefined);
      prefetched.set(name, loading);
    }
  };

  /**
   * The committed file, else (for a segment) its uploaded partial. The segment is asked again
   * after a missing partial: the archiver commits a closed segment before it removes the
   * segment's partial, so a segment committed between the first two reads is found then, instead
   * of a 404 that would end recovery early.
   */
  const locate = async (file: string, isSegment: boolean): Promise<{ manifest: WalFileManifest; outcome: 'file' | 'partial' } | undefined> => {
    const read = (name: string) => options.archive.readManifest(options.target, options.systemIdentifier, name);
    const whole = await read(file);
    if (whole) return { manifest: whole, outcome: 'file' };
    if (!isSegment) return undefined;
    const partial = await read(`${file}.partial`);
    if (partial) return { manifest: partial, outcome: 'partial' };
    const committedMeanwhile = await read(file);
    return committedMeanwhile ? { manifest: committedMeanwhile, outcome: 'file' } : undefined;
  };

  /**
   * A partial is the end of the archive only when no later closed segment of its timeline is
   * committed. The archiver commits closed segments in order, so a later closed segment beside an
   * uncommitted one means WAL was lost (a dropped slot): replaying the partial and stopping there
   * would promote a server that silently lacks the WAL after it. (The listing is taken afresh: the
   * end of the archive is reached once or twice per restore.)
   */
  const partialOrLostSegment = async (file: string, segment: SegmentName, partial: { manifest: WalFileManifest; outcome: 'file' | 'partial' }): Promise<{ manifest: WalFileManifest; outcome: 'file' | 'partial' }> => {
    const files = await options.archive.list(options.target, options.systemIdentifier);
    const later = laterOnTimeline(files.map((f) => f.file), segment, true);
    if (later === undefined) return partial;
    const committedMeanwhile = await options.archive.readManifest(options.target, options.systemIdentifier, file);
    if (committedMeanwhile) return { manifest: committedMeanwhile, outcome: 'file' };
    throw new TidemarkError('WAL_MISSING', `WAL segment ${file} is only partly archived (${file}.partial), but the archive of "${options.target}" (system ${options.systemIdentifier}) holds later WAL (${later}): the rest of ${file} was lost. Restore to a point before it, or take a new base backup`);
  };

  const checkSize = (manifest: WalFileManifest, outcome: 'file' | 'partial', isSegment: boolean): void => {
    const size = options.walSegmentSize;
    if (isSegment && (outcome === 'file' ? manifest.data.rawBytes !== size : manifest.data.rawBytes > size)) {
      throw new TidemarkError('INTEGRITY_FORMAT', `archived WAL ${manifest.file} holds ${manifest.data.rawBytes} bytes, but segments of this cluster are ${size} bytes; the archive entry is damaged`);
    }
  };

  const serve = async (file: string, response: ServerResponse): Promise<void> => {
    const started = Date.now();
    const segment = segmentName(file, options.walSegmentSize);
    if (!segment && !HISTORY.test(file)) {
      record({ file, outcome: 'missing', bytes: 0, ms: 0 });
      response.writeHead(404, NOT_ARCHIVED_HEADERS).end();
      return;
    }
    const ready = prefetched.get(file);
    prefetched.delete(file);
    const bytes = ready === undefined ? undefined : await ready;
    if (segment && bytes !== undefined) {
      prefetchAfter(segment);
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
      response.end(bytes);
      record({ file, outcome: 'file', bytes: bytes.length, ms: Date.now() - started, prefetched: true });
      return;
    }
    let located = await locate(file, segment !== undefined);
    if (located?.outcome === 'partial' && segment !== undefined) located = await partialOrLostSegment(file, segment, located);
    if (!located) {
      const backupEnd = options.backupEndSegment === undefined ? undefined : segmentName(options.backupEndSegment, options.walSegmentSize);
      const beyondBackup = segment !== undefined && (backupEnd === undefined || segment.timeline !== backupEnd.timeline || segment.position > backupEnd.position);
      const later = beyondBackup ? await isGap(segment) : undefined;
      if (later !== undefined) {
        throw new TidemarkError('WAL_MISSING', `WAL segment ${file} is missing from the archive of "${options.target}" (system ${options.systemIdentifier}), which holds later WAL (${later}); recovery stops here rather than skip it. Restore to a point before ${file}, or find the segment`);
      }
      record({ file, outcome: 'missing', bytes: 0, ms: Date.now() - started });
      response.writeHead(404, NOT_ARCHIVED_HEADERS).end();
      return;
    }
    let decoded: Readable;
    for (let attempt = 1; ; attempt += 1) {
      checkSize(located.manifest, located.outcome, segment !== undefined);
      try {
        decoded = await openDecoded(options.archive, located.manifest, options.keys);
        break;
      } catch (error) {
        // The archiver replaced this file meanwhile (a partial uploaded again, or superseded by its
        // closed segment) and removed the data object the manifest we read points at: look again.
        const again = error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND' && attempt < 3 ? await locate(file, segment !== undefined) : undefined;
        if (!again) throw error;
        located = again;
      }
    }
    const { manifest, outcome } = located;
    const size = segment ? options.walSegmentSize : manifest.data.rawBytes;
    const chunks = decoded[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let sent = 0;
    try {
      // The first chunk comes before the headers: a missing key or a damaged header is a clear 500.
      const first = await chunks.next();
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      const count = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          sent += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(Readable.from(bodyOf(first, chunks, size - manifest.data.rawBytes)), count, response);
    } catch (error) {
      decoded.destroy();
      if (clientWentAway(error)) {
        // The fetch script or the server went away (it says why in the server's log); not ours to report.
        response.destroy();
        record({ file, outcome: 'error', bytes: sent, ms: Date.now() - started });
        log.warn({ file, sent }, 'the restored server stopped reading WAL midway');
        return;
      }
      throw error instanceof TidemarkError ? new TidemarkError(error.code, `archived WAL ${manifest.file}: ${error.message}`, { cause: error, retryable: error.retryable }) : error;
    }
    record({ file, outcome, bytes: sent, ms: Date.now() - started });
    if (segment && outcome === 'file') prefetchAfter(segment);
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const [, requestToken, rawFile, ...rest] = (request.url ?? '').split('/');
    // Never 404 here: the fetch script reads 404 as "the end of the archive" and recovery would end early.
    if (request.method !== 'GET' || requestToken !== token || rawFile === undefined || rest.length > 0) {
      response.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('not a WAL request of this restore');
      return;
    }
    const file = decodeURIComponent(rawFile);
    serve(file, response).catch((error: unknown) => {
      const failure = noteError(error);
      record({ file, outcome: 'error', bytes: 0, ms: 0 });
      log.error({ err: toErrorInfo(failure), file }, 'serving WAL failed; recovery will abort');
      if (response.headersSent) response.destroy();
      else response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${failure.code}: ${failure.message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/${token}`,
    fetches,
    filesServed: () => fetches.filter((f) => f.outcome === 'file' || f.outcome === 'partial').length,
    firstError: () => firstError,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        prefetched.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/** The decoded file (its first chunk already read), then `padding` zero bytes. */
async function* bodyOf(first: IteratorResult<Buffer>, rest: AsyncIterator<Buffer>, padding: number): AsyncGenerator<Buffer> {
  for (let next = first; !next.done; next = await rest.next()) yield next.value;
  if (padding <= 0) return;
  const zeros = Buffer.alloc(Math.min(padding, 1024 * 1024));
  for (let left = padding; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
}

const clientWentAway = (error: unknown): boolean =>
  !(error instanceof TidemarkError) && ['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE'].includes((error as NodeJS.ErrnoException).code ?? '');

/** A shell word for restore_command (single-quoted; % doubled, as PostgreSQL expands %f and %p). */
const shellWord = (value: string): string => `'${value.replace(/'/g, `'\\''`).replace(/%/g, '%%')}'`;

/** In a restore's data directory while recovery runs: the fetch script and the WAL server's URL (with its token). */
export const WAL_FETCH_FILES = { script: 'tidemark-wal-fetch.mjs', source: 'tidemark-wal-source' } as const;

export interface InstalledWalFetch {
  /** The restore_command that runs the copy in the data directory. */
  readonly restoreCommand: string;
  /** Removes the script and the URL file (safe to call twice). */
  remove(): Promise<void>;
}

/**
 * Puts what the restored server's restore_command runs into its own data directory: a copy of
 * the fetch script and a file holding `url`, both 0600 and owned by the server's OS user. The
 * server then depends on nothing in the installation: a checkout under a directory that user
 * cannot enter (a 0700 home) restores as well as one under /opt.
 */
export async function installWalFetch(dataDirectory: string, url: string, owner: { readonly uid: number; readonly gid: number } | undefined): Promise<InstalledWalFetch> {
  const script = join(dataDirectory, WAL_FETCH_FILES.script);
  const source = join(dataDirectory, WAL_FETCH_FILES.source);
  await copyFile(WAL_FETCH_SCRIPT, script);
  await writeFile(source, `${url}\n`, { mode: 0o600 });
  for (const path of [script, source]) {
    await chmod(path, 0o600);
    if (owner !== undefined) await chown(path, owner.uid, owner.gid);
  }
  return {
    restoreCommand: walFetchCommand(source, process.execPath, script),
    remove: async () => {
      await rm(script, { force: true });
      await rm(source, { force: true });
    },
  };
}

/**
 * The restore_command running the fetch script with this node binary. `source` is the URL or,
 * better, a file holding it (the token then never appears in `ps`).
 */
export function walFetchCommand(source: string, nodeBinary: string = process.execPath, script: string = WAL_FETCH_SCRIPT): string {
  return `${shellWord(nodeBinary)} ${shellWord(script)} ${shellWord(source)} %f %p`;
}
