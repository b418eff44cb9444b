// Continuous WAL archiving of one pg target: a supervised pg_receivewal streams the target's WAL
// over a physical slot into a local spool; this archiver uploads what it writes through the
// pipeline (the target's compression and encryption) into the WAL archive, announces each upload
// with `wal.archived` (with the lag), and watches the slot and the lag (`wal.problem`).
//
// Files and their commit:
// - a closed segment or a history file: encode → saveData → commit(manifest) → the segment's
//   `.partial` upload is removed from the archive (the segment supersedes it) → wal.archived.
//   The spool file is deleted by the receiver only after this resolves, so a crash anywhere
//   re-offers it; a re-offered file whose committed copy decodes to the same bytes is only
//   announced again (a different content, say a re-written history file, is committed anew).
// - the open segment (`.partial`, zero-padded by pg_receivewal to 16 MiB, so it is a valid
//   segment file for restore_command): uploaded every partialIntervalSeconds when it grew. Its
//   end is the slot's restart_lsn read just BEFORE the file: with --synchronous pg_receivewal
//   fsyncs, then reports that flush position, which PostgreSQL stores as the physical slot's
//   restart_lsn; so the bytes uploaded hold at least up to it. (pg_stat_replication.flush_lsn is
//   the same number but vanishes while the receiver is disconnected; the slot's survives.)
//
// Everything the archiver learns from PostgreSQL comes from one cheap query on one persistent
// connection (see primary.ts), per tick and per upload.
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  MANIFEST_VERSION, SCHEMA_VERSION, TidemarkError, WalArchived, WalProblem, messageIds, subjects, type Compression, type WalFileKind,
  type WalFileManifest, type WalProblemKind,
} from '@tidemark/contracts';
import {
  formatLsn, historyFileName, parseLsn, parseTimelineHistory, parseWalFileName, segmentStartLsn, WAL_SEGMENT_SIZE, type WalReceiver, type WalReceiverOptions,
} from '@tidemark/pg';
import { decodeCommitted, encodeStream, settleFirstCause, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';
import { retryDelay, type EventPublisher } from '@tidemark/runtime';
import { readAll, type WalArchive } from '@tidemark/storage';
import { LagTracker } from './lag.js';
import type { PrimarySample, WalPrimary } from './primary.js';

export interface ArchiverLogger {
  debug(details: object, message: string): void;
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface WalArchiverOptions {
  readonly target: string;
  /** The physical replication slot (walSlotOf(target)). */
  readonly slot: string;
  /** pg_receivewal's spool: <pg.workDir>/wal/<target>. */
  readonly spoolDir: string;
  /** The OS user pg_receivewal runs as when we are root. */
  readonly osUser: string;
  readonly partialIntervalSeconds: number;
  readonly maxSlotRetainedMb: number;
  readonly maxLagSeconds: number;
  /** The target's pipeline settings (as for its artifacts). */
  readonly encode: { readonly compression: Compression; readonly compressionLevel?: number; readonly key?: EncryptionKey };
  /** To read back an archived copy when a file is offered again. */
  readonly keys: KeyRing;
  readonly archive: WalArchive;
  readonly publisher: EventPublisher;
  readonly primary: WalPrimary;
  /** startWalReceiver bound to the target's connection. */
  readonly startReceiver: (options: WalReceiverOptions) => Promise<WalReceiver>;
  readonly agent: { readonly id: string; readonly version: string };
  readonly logger: ArchiverLogger;
  readonly clock?: () => Date;
  /** Monitoring tick; default min(partialIntervalSeconds, 5) s. */
  readonly tickMs?: number;
  /** Retry delays while the server cannot be reached at start; default 1 s doubling to 30 s. */
  readonly startRetryMs?: { readonly initial: number; readonly max: number };
  /** A problem of one kind is published at most this often; default 10 minutes. */
  readonly problemIntervalMs?: number;
  /** Passed to the receiver (tests shorten them). */
  readonly receiverRestartDelayMs?: { readonly initial: number; readonly max: number };
  readonly scanIntervalMs?: number;
}

export interface ArchivedFile {
  readonly file: string;
  readonly fileKind: WalFileKind;
  readonly endLsn: string | undefined;
  readonly at: string;
}

export interface WalArchiverStatus {
  readonly target: string;
  readonly slot: string;
  readonly state: 'starting' | 'running' | 'receiver down' | 'stopped';
  readonly systemIdentifier: string | undefined;
  readonly receiver: { readonly running: boolean; readonly pid: number | undefined; readonly restarts: number } | undefined;
  /** pg_receivewal runs and the server answered the last sample: WAL is being streamed. */
  readonly receiverUp: boolean;
  /** Since when it has not been up (absent while up). */
  readonly receiverDownSince: string | undefined;
  /** Whether the server answered the last sample (undefined before the first). */
  readonly sourceReachable: boolean | undefined;
  readonly lastArchived: ArchivedFile | undefined;
  readonly archivedEndLsn: string | undefined;
  readonly primaryLsn: string | undefined;
  readonly lagBytes: number | undefined;
  readonly lagSeconds: number | undefined;
  /** How long the receiver has been down (0 when running). */
  readonly receiverDownSeconds: number;
  readonly slotState: { readonly active: boolean; readonly retainedBytes: number | undefined; readonly walStatus: string | undefined } | undefined;
  readonly uploads: { readonly segments: number; readonly partials: number; readonly history: number; readonly storedBytes: number };
  readonly lastError: string | undefined;
}

const MiB = 1024 * 1024;
const SEGMENT_BYTES = BigInt(WAL_SEGMENT_SIZE);
// XLogLongPageHeaderData, the header of every segment's first page (x86-64/arm64 layout).
const XLP_LONG_HEADER = 0x0002;
const LONG_HEADER_BYTES = 40;

/** What the first page of a segment file says about where it belongs. */
export interface SegmentHeader {
  readonly systemIdentifier: string;
  readonly pageAddress: bigint;
  readonly segmentSize: number;
}

/** Reads a segment's long page header; undefined while the file holds no WAL yet (zeros). */
export async function readSegmentHeader(path: string): Promise<SegmentHeader | undefined> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(LONG_HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, LONG_HEADER_BYTES, 0);
    if (bytesRead < LONG_HEADER_BYTES || buffer.every((byte) => byte === 0)) return undefined;
    const info = buffer.readUInt16LE(2);
    if ((info & XLP_LONG_HEADER) === 0) {
      throw new TidemarkError('INTEGRITY_FORMAT', `${path} does not start with a WAL segment header; it is not a WAL segment: remove it from the spool`);
    }
    return { pageAddress: buffer.readBigUInt64LE(8), systemIdentifier: buffer.readBigUInt64LE(24).toString(), segmentSize: buffer.readUInt32LE(32) };
  } finally {
    await handle.close();
  }
}

/** Where each ancestor timeline of a history file ended (its switch point). */
export function parseHistory(content: string): Map<number, bigint> {
  return new Map(parseTimelineHistory(content).map((entry) => [entry.timeline, parseLsn(entry.switchLsn)] as const));
}

async function sha256Of(stream: AsyncIterable<unknown>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export class WalArchiver {
  private readonly clock: () => Date;
  private readonly log: ArchiverLogger;
  private readonly lag = new LagTracker();
  private readonly problemIntervalMs: number;

  private stopping = false;
  private stopped: Promise<void> | undefined;
  private booting: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  private receiver: WalReceiver | undefined;
  private systemIdentifier: string | undefined;
  private archivedEnd: bigint | undefined;
  private lastArchived: ArchivedFile | undefined;
  private lastSample: PrimarySample | undefined;
  private lastError: string | undefined;
  private receiverDownSinceMs: number | undefined;
  private sourceReachable: boolean | undefined;
  private readonly uploads = { segments: 0, partials: 0, history: 0, storedBytes: 0 };
  /** The end uploaded last for each partial name (a partial is uploaded again only when it grew). */
  private readonly partialEnds = new Map<string, bigint | 'unknown'>();
  /** Where each (parent) timeline ended, from the history files seen. */
  private readonly switchPoints = new Map<number, bigint>();
  private newestTimeline = 1;
  private readonly problemPublishedAt = new Map<WalProblemKind, number>();

  constructor(private readonly options: WalArchiverOptions) {
    this.clock = options.clock ?? (() => new Date());
    this.log = options.logger;
    this.problemIntervalMs = options.problemIntervalMs ?? 10 * 60_000;
  }

  get target(): string {
    return this.options.target;
  }

  /**
   * Starts in the background and returns at once: an unreachable server is retried (with
   * backoff) without failing the agent. The slot is checked before streaming resumes.
   */
  start(): void {
    if (this.booting !== undefined || this.stopping) return;
    this.receiverDownSinceMs = this.now();
    this.booting = this.boot();
    const tickMs = this.options.tickMs ?? Math.min(this.options.partialIntervalSeconds, 5) * 1000;
    this.tickTimer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => {
        this.ticking = undefined;
      });
    }, tickMs);
  }

  /** Stops pg_receivewal (SIGINT) after the upload in flight, then the monitor. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      clearInterval(this.tickTimer);
      this.wake?.();
      // The tick first: it may be restarting the archiving for a new cluster (a new boot).
      await this.ticking;
      await this.booting;
      await this.receiver?.stop();
      await this.options.primary.close();
    })();
    return this.stopped;
  }

  status(): WalArchiverStatus {
    const now = this.now();
    const receiver = this.receiver?.status();
    const sample = this.lastSample;
    const retained = sample?.slot?.restartLsn !== undefined ? Number(sample.currentLsn - sample.slot.restartLsn) : undefined;
    const receiverUp = !this.stopping && receiver?.running === true && this.sourceReachable !== false;
    // The tick notes when it went down; between ticks a fresh outage counts from now.
    const downSinceMs = receiverUp ? undefined : (this.receiverDownSinceMs ?? now);
    const downSeconds = downSinceMs === undefined ? 0 : (now - downSinceMs) / 1000;
    const state = this.stopping ? 'stopped' : receiver === undefined ? 'starting' : receiverUp ? 'running' : 'receiver down';
    return {
      target: this.options.target,
      slot: this.options.slot,
      state,
      systemIdentifier: this.systemIdentifier,
      receiver: receiver === undefined ? undefined : { running: receiver.running, pid: receiver.pid, restarts: receiver.restarts },
      receiverUp,
      receiverDownSince: downSinceMs === undefined ? undefined : new Date(downSinceMs).toISOString(),
      sourceReachable: this.sourceReachable,
      lastArchived: this.lastArchived,
      archivedEndLsn: this.archivedEnd === undefined ? undefined : formatLsn(this.archivedEnd),
      primaryLsn: sample === undefined ? undefined : formatLsn(sample.currentLsn),
      lagBytes: this.lagBytes(),
      lagSeconds: this.lag.lagSeconds(now, this.archivedEnd),
      receiverDownSeconds: Math.max(0, downSeconds),
      slotState: sample?.slot === undefined ? undefined : { active: sample.slot.active, retainedBytes: retained, walStatus: sample.slot.walStatus },
      uploads: { ...this.uploads },
      lastError: this.lastError,
    };
  }

  /**
   * The health check: ok while the receiver streams and the archive is within maxLagSeconds.
   * A receiver that is down (the server is unreachable, or pg_receivewal between restarts) or a
   * lagging archive is `degraded` at once: the agent keeps retrying and recovers by itself, so
   * it is reported, not a reason to restart the agent. The wal_lagging alert stays at maxLagSeconds.
   */
  health(): { ok: boolean; degraded?: boolean; detail: WalArchiverStatus } {
    const status = this.status();
    if (status.state === 'stopped') return { ok: false, detail: status };
    const ok = status.receiverUp && (status.lagSeconds ?? 0) <= this.options.maxLagSeconds;
    return ok ? { ok, detail: status } : { ok, degraded: true, detail: status };
  }

  // --- start-up ---------------------------------------------------------------------------------

  private async boot(): Promise<void> {
    const retry = this.options.startRetryMs ?? { initial: 1000, max: 30_000 };
    let attempts = 0;
    while (!this.stopping) {
      try {
        const sample = await this.sample();
        this.systemIdentifier = sample.systemIdentifier;
        this.newestTimeline = Math.max(this.newestTimeline, sample.timeline);
        await this.setAsideForeignSpool(sample.systemIdentifier);
        // Before streaming resumes: a slot that held WAL back while we were away is reported now.
        await this.checkSlot(sample);
        const receiver = await this.options.startReceiver({
          slot: this.options.slot,
          dir: this.options.spoolDir,
          osUser: this.options.osUser,
          statusIntervalSeconds: this.options.partialIntervalSeconds,
          // The archiver reads the slot itself, on its one monitor connection.
          pollSlot: false,
          logger: this.log,
          onSegment: (path, name) => this.archiveClosedFile(path, name),
          onPartial: (path, name) => this.archivePartial(path, name),
          ...(this.options.receiverRestartDelayMs ? { restartDelayMs: this.options.receiverRestartDelayMs } : {}),
          ...(this.options.scanIntervalMs !== undefined ? { scanIntervalMs: this.options.scanIntervalMs } : {}),
        });
        this.receiver = receiver;
        if (this.stopping) return;
        this.lastError = undefined;
        this.log.info({ target: this.target, slot: this.options.slot, systemIdentifier: this.systemIdentifier, spool: this.options.spoolDir }, 'wal archiving started');
        return;
      } catch (error) {
        attempts += 1;
        const delay = retryDelay(attempts, retry.initial, retry.max);
        this.lastError = messageOf(error);
        // Loud once, then quiet: a server that is down for hours must not flood the log.
        const log = attempts === 1 || attempts % 20 === 0 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
        log({ target: this.target, attempts, retryInMs: delay, err: this.lastError }, 'cannot start wal archiving yet; retrying');
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, delay).unref();
        });
        this.wake = undefined;
      }
    }
  }

  /**
   * A spool written for another cluster (the target was re-initialised while we were away, or
   * just now) must not be uploaded under this one's system identifier, and pg_receivewal could
   * not resume from it: it is moved aside, kept for the operator.
   */
  private async setAsideForeignSpool(systemIdentifier: string): Promise<void> {
    const names = await readdir(this.options.spoolDir).catch(() => [] as string[]);
    for (const name of names.filter((n) => parseWalFileName(n)?.kind === 'segment').sort().reverse()) {
      const header = await readSegmentHeader(join(this.options.spoolDir, name)).catch(() => undefined);
      if (header === undefined) continue;
      if (header.systemIdentifier === systemIdentifier) return;
      let aside = `${this.options.spoolDir}.cluster-${header.systemIdentifier}`;
      if (await stat(aside).then(() => true, () => false)) aside = `${aside}-${this.now()}`;
      await rename(this.options.spoolDir, aside);
      this.log.error(
        { target: this.target, systemIdentifier, spoolSystemIdentifier: header.systemIdentifier, keptIn: aside },
        'the wal spool belongs to another cluster (the target was re-initialised); it was moved aside and archiving starts afresh for the new cluster',
      );
      return;
    }
  }

  // --- uploads (called by the receiver, one at a time) ----------------------------------------------

  private requireSystemIdentifier(): string {
    if (this.systemIdentifier === undefined) throw new TidemarkError('INTERNAL', 'wal file offered before the system identifier is known');
    return this.systemIdentifier;
  }

  /** A closed segment or a history file. */
  private async archiveClosedFile(path: string, name: string): Promise<void> {
    const parsed = parseWalFileName(name);
    if (parsed === undefined) return;
    const systemIdentifier = this.requireSystemIdentifier();
    if (parsed.kind === 'history') {
      const content = await readFile(path);
      try {
        for (const [timeline, point] of parseHistory(content.toString('utf8'))) this.switchPoints.set(timeline, point);
      } catch (error) {
        // Archived all the same: it is PostgreSQL's file, and recovery reads it, not us.
        this.log.warn({ target: this.target, file: name, err: messageOf(error) }, 'cannot read the switch points of the history file');
      }
      this.newestTimeline = Math.max(this.newestTimeline, parsed.timeline);
      const manifest = await this.storeOnce(path, name, { fileKind: 'history', timeline: parsed.timeline });
      this.uploads.history += 1;
      this.noteArchived(manifest, undefined);
      await this.announce(manifest, messageIds.walHistoryArchived(systemIdentifier, name, manifest.data.sha256));
      return;
    }
    await this.checkBelongsHere(path, name, systemIdentifier);
    const start = parseLsn(segmentStartLsn(name));
    const end = start + SEGMENT_BYTES;
    const manifest = await this.storeOnce(path, name, { fileKind: 'segment', timeline: parsed.timeline, startLsn: formatLsn(start), endLsn: formatLsn(end) });
    // The closed segment supersedes the uploads of its open state.
    await this.options.archive.remove(this.target, systemIdentifier, `${name}.partial`);
    this.partialEnds.delete(`${name}.partial`);
    this.uploads.segments += 1;
    this.noteArchived(manifest, end);
    await this.announce(manifest, messageIds.walSegmentArchived(systemIdentifier, name));
  }

  /** The open segment (or an older timeline's last one, left behind at a switch). */
  private async archivePartial(path: string, name: string): Promise<void> {
    const parsed = parseWalFileName(name);
    if (parsed?.kind !== 'segment') return;
    const systemIdentifier = this.requireSystemIdentifier();
    // The receiver offers the partial of a timeline that ended once and then deletes it from the
    // spool: where this cannot upload it now it must fail (the file is kept and offered again),
    // not return as if it were archived.
    const cannotYet = (why: string): void => {
      if (parsed.timeline < this.newestTimeline) {
        throw new TidemarkError('SOURCE_UNAVAILABLE', `the partial segment ${name} of timeline ${parsed.timeline}, which has ended, cannot be archived yet (${why}); it stays in the spool and is offered again`);
      }
    };
    let sample: PrimarySample;
    try {
      // Read BEFORE the file: the file then holds at least up to this flush position.
      sample = await this.sample();
    } catch (error) {
      cannotYet(`the flush position cannot be read: ${messageOf(error)}`);
      this.log.debug({ target: this.target, file: name, err: messageOf(error) }, 'cannot read the flush position; the partial segment waits for the next interval');
      return;
    }
    if (sample.systemIdentifier !== systemIdentifier) {
      cannotYet('the server is another cluster now');
      return; // another cluster: the tick follows it
    }
    const start = parseLsn(segmentStartLsn(name));
    let end: bigint | undefined = sample.slot?.restartLsn;
    if (end === undefined) {
      cannotYet(`replication slot ${this.options.slot} is missing`);
      return;
    }
    if (end > start + SEGMENT_BYTES) end = start + SEGMENT_BYTES;
    if (parsed.timeline < this.newestTimeline) {
      // A timeline that has ended: its WAL stops at the switch point (known from a history file).
      const switchPoint = await this.switchPointOf(parsed.timeline, systemIdentifier);
      end = switchPoint === undefined ? undefined : end < switchPoint ? end : switchPoint;
    }
    if (end !== undefined && end <= start) return; // nothing of this segment is flushed yet
    const previous = this.partialEnds.get(name);
    if (previous !== undefined && (end === undefined || previous === 'unknown' || end <= previous)) return; // it did not grow
    if ((await this.checkBelongsHere(path, name, systemIdentifier)) === 'empty') return;

    const manifest = await this.upload(path, name, { fileKind: 'partial', timeline: parsed.timeline, startLsn: formatLsn(start), ...(end !== undefined ? { endLsn: formatLsn(end) } : {}) });
    this.partialEnds.set(name, end ?? 'unknown');
    this.uploads.partials += 1;
    this.noteArchived(manifest, end);
    await this.announce(manifest, messageIds.walPartialArchived(systemIdentifier, name, end === undefined ? { sha256: manifest.data.sha256 } : { endLsn: formatLsn(end) }), sample);
  }

  /** Where `timeline` ended: from the history files seen, else from the newest archived one. */
  private async switchPointOf(timeline: number, systemIdentifier: string): Promise<bigint | undefined> {
    const known = this.switchPoints.get(timeline);
    if (known !== undefined) return known;
    try {
      const manifest = await this.options.archive.readManifest(this.target, systemIdentifier, historyFileName(this.newestTimeline));
      if (manifest === undefined) return undefined;
      const content = await this.readBack(manifest);
      for (const [parent, point] of parseHistory(content.toString('utf8'))) this.switchPoints.set(parent, point);
    } catch (error) {
      this.log.warn({ target: this.target, timeline, err: messageOf(error) }, 'cannot read the archived history file; the old timeline\'s partial segment is archived without an end position');
    }
    return this.switchPoints.get(timeline);
  }

  /** Refuses a file of another cluster or segment size; 'empty' while it holds no WAL yet. */
  private async checkBelongsHere(path: string, name: string, systemIdentifier: string): Promise<'ok' | 'empty'> {
    const header = await readSegmentHeader(path);
    if (header === undefined) return 'empty';
    if (header.systemIdentifier !== systemIdentifier) {
      throw new TidemarkError('INTEGRITY_FORMAT', `wal file ${name} belongs to cluster ${header.systemIdentifier}, not ${systemIdentifier}; the target was re-initialised: archiving follows the new cluster shortly`);
    }
    if (header.segmentSize !== WAL_SEGMENT_SIZE) {
      throw new TidemarkError('CONFIG_INVALID', `target ${this.target} uses ${header.segmentSize}-byte WAL segments; Tidemark archives only the default 16 MiB segments`);
    }
    if (header.pageAddress !== parseLsn(segmentStartLsn(name))) {
      throw new TidemarkError('INTEGRITY_FORMAT', `wal file ${name} starts at ${formatLsn(header.pageAddress)}, not at its segment's start; remove it from the spool`);
    }
    return 'ok';
  }

  /**
   * Commits a closed file unless the archive already holds the same bytes (a file offered again
   * after a restart): then the committed manifest is returned and only announced again.
   */
  private async storeOnce(path: string, name: string, facts: FileFacts): Promise<WalFileManifest> {
    const systemIdentifier = this.requireSystemIdentifier();
    const existing = await this.options.archive.readManifest(this.target, systemIdentifier, name);
    if (existing !== undefined) {
      const local = await sha256Of((await open(path, 'r')).createReadStream());
      let same = false;
      if (local.bytes === existing.data.rawBytes) {
        try {
          // Hashed as it decodes: nothing is held in memory.
          same = (await sha256Of(await this.openDecoded(existing))).sha256 === local.sha256;
        } catch (error) {
          this.log.warn({ target: this.target, file: name, err: messageOf(error) }, 'the archived copy cannot be read back; archiving the file again');
        }
      }
      if (same) {
        this.log.debug({ target: this.target, file: name }, 'already archived with the same content; announcing it again');
        return existing;
      }
      this.log.warn({ target: this.target, file: name }, 'the archived copy differs from the file; archiving the new content');
    }
    return this.upload(path, name, facts);
  }

  private async openDecoded(manifest: WalFileManifest): Promise<Readable> {
    return decodeCommitted(await this.options.archive.openData(manifest), manifest, this.options.keys);
  }

  /** A small archived file (a history file), whole. */
  private async readBack(manifest: WalFileManifest): Promise<Buffer> {
    return readAll(await this.openDecoded(manifest));
  }

  /** Encodes and stores the file, then commits its manifest (manifest last). */
  private async upload(path: string, name: string, facts: FileFacts): Promise<WalFileManifest> {
    const systemIdentifier = this.requireSystemIdentifier();
    // Opened first: a partial renamed to its segment name meanwhile is still read whole.
    const handle = await open(path, 'r');
    const source = handle.createReadStream();
    const { compression, compressionLevel, key } = this.options.encode;
    const encoded = encodeStream(source, { compression, ...(compressionLevel !== undefined ? { compressionLevel } : {}), ...(key ? { key } : {}) });
    const saving = this.options.archive.saveData(this.target, systemIdentifier, name, encoded.output as Readable);
    // A failed upload aborts the encoding and the file read; the upload's own error is the one reported.
    const [saved, summary] = await settleFirstCause([saving, encoded.summary] as const);
    const manifest: WalFileManifest = {
      manifestVersion: MANIFEST_VERSION,
      engine: 'pg',
      target: this.target,
      systemIdentifier,
      file: name,
      fileKind: facts.fileKind,
      timeline: facts.timeline,
      ...(facts.startLsn !== undefined ? { startLsn: facts.startLsn } : {}),
      ...(facts.endLsn !== undefined ? { endLsn: facts.endLsn } : {}),
      archivedAt: this.clock().toISOString(),
      agent: { id: this.options.agent.id, version: this.options.agent.version },
      pipeline: summary.pipeline,
      data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
    };
    await this.options.archive.commit(manifest);
    this.uploads.storedBytes += summary.storedBytes;
    return manifest;
  }

  private noteArchived(manifest: WalFileManifest, end: bigint | undefined): void {
    if (end !== undefined && (this.archivedEnd === undefined || end > this.archivedEnd)) {
      this.archivedEnd = end;
      this.lag.prune(end);
    }
    this.lastArchived = { file: manifest.file, fileKind: manifest.fileKind, endLsn: manifest.endLsn, at: manifest.archivedAt };
  }

  private lagBytes(): number | undefined {
    const sample = this.lastSample;
    if (sample === undefined || this.archivedEnd === undefined) return undefined;
    return Math.max(0, Number(sample.currentLsn - this.archivedEnd));
  }

  /** wal.archived, with the lag right now. A NATS outage must not stop the archiving itself. */
  private async announce(manifest: WalFileManifest, msgId: string, fresh?: PrimarySample): Promise<void> {
    if (fresh === undefined) {
      try {
        await this.sample();
      } catch {
        // the lag fields are left out
      }
    }
    const now = this.now();
    const lagBytes = this.lagBytes();
    const lagSeconds = this.lag.lagSeconds(now, this.archivedEnd);
    const event: WalArchived = {
      schemaVersion: SCHEMA_VERSION,
      engine: 'pg',
      target: this.target,
      occurredAt: new Date(now).toISOString(),
      systemIdentifier: manifest.systemIdentifier,
      file: manifest.file,
      fileKind: manifest.fileKind,
      timeline: manifest.timeline,
      ...(manifest.startLsn !== undefined ? { startLsn: manifest.startLsn } : {}),
      ...(manifest.endLsn !== undefined ? { endLsn: manifest.endLsn } : {}),
      storedBytes: manifest.data.storedBytes,
      ...(lagBytes !== undefined ? { lagBytes } : {}),
      ...(lagSeconds !== undefined ? { lagSeconds: Math.round(lagSeconds * 1000) / 1000 } : {}),
    };
    this.log.debug({ target: this.target, file: manifest.file, fileKind: manifest.fileKind, endLsn: manifest.endLsn, lagBytes, lagSeconds }, 'wal archived');
    try {
      await this.options.publisher.publish(subjects.walArchived('pg', this.target), WalArchived, event, msgId);
    } catch (error) {
      this.log.warn({ target: this.target, file: manifest.file, err: messageOf(error) }, 'wal file archived but its wal.archived event could not be published');
    }
  }

  // --- monitoring -------------------------------------------------------------------------------

  private now(): number {
    return this.clock().getTime();
  }

  /** One sample of the primary; feeds the lag ring (only for the cluster being archived). */
  private async sample(): Promise<PrimarySample> {
    let sample: PrimarySample;
    try {
      sample = await this.options.primary.sample(this.options.slot);
      this.sourceReachable = true;
    } catch (error) {
      this.sourceReachable = false;
      throw error;
    }
    if (this.systemIdentifier === undefined || sample.systemIdentifier === this.systemIdentifier) {
      this.lastSample = sample;
      this.lag.record(this.now(), sample.currentLsn);
    }
    return sample;
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    try {
      const sample = await this.sample();
      if (this.systemIdentifier !== undefined && this.receiver !== undefined && sample.systemIdentifier !== this.systemIdentifier) {
        await this.followNewCluster(sample.systemIdentifier);
        return;
      }
      this.newestTimeline = Math.max(this.newestTimeline, sample.timeline);
      await this.checkSlot(sample);
    } catch (error) {
      this.lastError = messageOf(error);
      this.log.debug({ target: this.target, err: this.lastError }, 'cannot sample the server for wal monitoring');
    }
    const now = this.now();
    if (this.receiver?.status().running === true && this.sourceReachable !== false) this.receiverDownSinceMs = undefined;
    else this.receiverDownSinceMs ??= now;
    await this.checkLag(now);
  }

  private async followNewCluster(systemIdentifier: string): Promise<void> {
    this.log.error({ target: this.target, was: this.systemIdentifier, now: systemIdentifier }, 'the target is a different cluster now (re-initialised or replaced); restarting wal archiving for it');
    const receiver = this.receiver;
    this.receiver = undefined;
    await receiver?.stop();
    this.systemIdentifier = undefined;
    this.archivedEnd = undefined;
    this.lastSample = undefined;
    this.lag.clear();
    this.partialEnds.clear();
    this.switchPoints.clear();
    this.newestTimeline = 1;
    if (this.stopping) return;
    await this.booting;
    this.booting = this.boot();
  }

  private async checkSlot(sample: PrimarySample): Promise<void> {
    const slot = sample.slot;
    if (slot?.restartLsn === undefined) return; // missing: the receiver creates it
    const retained = Number(sample.currentLsn - slot.restartLsn);
    const limit = this.options.maxSlotRetainedMb * MiB;
    if (retained <= limit) return;
    const retainedMb = Math.round(retained / MiB);
    await this.problem('slot_growth', {
      summary: `replication slot ${this.options.slot} on ${this.target} holds back ${retainedMb} MiB of WAL (limit ${this.options.maxSlotRetainedMb} MiB, slot ${slot.active ? 'active' : 'inactive'}): ${slot.active ? 'the archive is far behind' : 'is the pg-agent archiving this target?'}; if the slot is no longer wanted, drop it (pg_drop_replication_slot) before the disk fills`,
      retainedBytes: retained,
      limitBytes: limit,
      details: { slot: this.options.slot, active: slot.active, walStatus: slot.walStatus ?? null, restartLsn: formatLsn(slot.restartLsn), currentLsn: formatLsn(sample.currentLsn) },
    });
  }

  private async checkLag(now: number): Promise<void> {
    const lagSeconds = this.lag.lagSeconds(now, this.archivedEnd) ?? 0;
    const downSeconds = this.receiverDownSinceMs === undefined ? 0 : (now - this.receiverDownSinceMs) / 1000;
    const worst = Math.max(lagSeconds, downSeconds);
    if (worst <= this.options.maxLagSeconds) return;
    const rounded = Math.round(worst);
    const summary =
      downSeconds >= lagSeconds
        ? `the WAL receiver of ${this.target} has been down for ${rounded} s (limit ${this.options.maxLagSeconds} s)${this.lastError ? `: ${this.lastError}` : ''}; WAL written meanwhile is only on the server (held by slot ${this.options.slot})`
        : `the WAL archive of ${this.target} is ${rounded} s behind the server (limit ${this.options.maxLagSeconds} s)${this.lastError ? `; last error: ${this.lastError}` : ''}; check storage and the pg-agent's log`;
    await this.problem('lagging', {
      summary,
      lagSeconds: rounded,
      limitSeconds: this.options.maxLagSeconds,
      details: { receiverDownSeconds: Math.round(downSeconds), archivedEndLsn: this.archivedEnd === undefined ? null : formatLsn(this.archivedEnd), lagBytes: this.lagBytes() ?? null },
    });
  }

  /** Publishes a wal.problem at most once per problemIntervalMs per kind (the msg id carries the time bucket). */
  private async problem(kind: WalProblemKind, fields: Omit<WalProblem, 'schemaVersion' | 'engine' | 'target' | 'occurredAt' | 'problem'>): Promise<void> {
    const now = this.now();
    const last = this.problemPublishedAt.get(kind);
    if (last !== undefined && now - last < this.problemIntervalMs) return;
    this.problemPublishedAt.set(kind, now);
    this.log.warn({ target: this.target, problem: kind }, fields.summary);
    const event: WalProblem = {
      schemaVersion: SCHEMA_VERSION,
      engine: 'pg',
      target: this.target,
      occurredAt: new Date(now).toISOString(),
      problem: kind,
      ...(this.systemIdentifier !== undefined ? { systemIdentifier: this.systemIdentifier } : {}),
      ...fields,
    };
    try {
      await this.options.publisher.publish(subjects.walProblem('pg', this.target), WalProblem, event, messageIds.walReceiverProblem(this.target, kind, Math.floor(now / this.problemIntervalMs)));
    } catch (error) {
      this.problemPublishedAt.delete(kind);
      this.log.warn({ target: this.target, problem: kind, err: messageOf(error) }, 'could not publish the wal problem; retrying next tick');
    }
  }
}

interface FileFacts {
  readonly fileKind: WalFileKind;
  readonly timeline: number;
  readonly startLsn?: string;
  readonly endLsn?: string;
}
