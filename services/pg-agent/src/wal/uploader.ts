// Uploads what pg_receivewal writes for one cluster through the pipeline (the target's
// compression and encryption) into the WAL archive and announces each upload with `wal.archived`.
// The receiver calls it one file at a time; a new cluster gets a new uploader.
//
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
import { open, readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  MANIFEST_VERSION, SCHEMA_VERSION, TidemarkError, WalArchived, messageIds, subjects, type Compression, type WalFileKind, type WalFileManifest,
} from '@tidemark/contracts';
import { formatLsn, historyFileName, parseLsn, parseWalFileName, segmentStartLsn, WAL_SEGMENT_SIZE } from '@tidemark/pg';
import { encodeStream, settleFirstCause, sha256OfStream, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';
import type { EventPublisher } from '@tidemark/runtime';
import { openDecoded, readAll, type WalArchive } from '@tidemark/storage';
import { messageOf, type ArchiverLogger, type WalMonitor } from './monitor.js';
import type { PrimarySample } from './primary.js';
import { checkSegmentBelongs, parseHistory } from './segment-file.js';

/** What was uploaded, over every cluster the archiver followed. */
export interface UploadCounts {
  segments: number;
  partials: number;
  history: number;
  storedBytes: number;
}

export interface WalUploaderOptions {
  readonly target: string;
  readonly slot: string;
  readonly systemIdentifier: string;
  /** The server's timeline when archiving started. */
  readonly timeline: number;
  readonly encode: { readonly compression: Compression; readonly compressionLevel?: number; readonly key?: EncryptionKey };
  /** To read back an archived copy when a file is offered again. */
  readonly keys: KeyRing;
  readonly archive: WalArchive;
  readonly publisher: EventPublisher;
  readonly agent: { readonly id: string; readonly version: string };
  readonly logger: ArchiverLogger;
  readonly clock: () => Date;
  readonly monitor: WalMonitor;
  readonly counts: UploadCounts;
}

interface FileFacts {
  readonly fileKind: WalFileKind;
  readonly timeline: number;
  readonly startLsn?: string;
  readonly endLsn?: string;
}

const SEGMENT_BYTES = BigInt(WAL_SEGMENT_SIZE);

export class WalUploader {
  private readonly target: string;
  private readonly systemIdentifier: string;
  private readonly cluster: { readonly target: string; readonly systemIdentifier: string };
  private readonly log: ArchiverLogger;
  private readonly monitor: WalMonitor;
  /** The end uploaded last for each partial name (a partial is uploaded again only when it grew). */
  private readonly partialEnds = new Map<string, bigint | 'unknown'>();
  /** Where each (parent) timeline ended, from the history files seen. */
  private readonly switchPoints = new Map<number, bigint>();
  private newestTimeline: number;

  constructor(private readonly options: WalUploaderOptions) {
    this.target = options.target;
    this.systemIdentifier = options.systemIdentifier;
    this.cluster = { target: options.target, systemIdentifier: options.systemIdentifier };
    this.log = options.logger;
    this.monitor = options.monitor;
    this.newestTimeline = Math.max(1, options.timeline);
  }

  /** The server reported this timeline (a promotion ends the older ones). */
  noteTimeline(timeline: number): void {
    this.newestTimeline = Math.max(this.newestTimeline, timeline);
  }

  /** A closed segment or a history file. */
  async archiveClosedFile(path: string, name: string): Promise<void> {
    const parsed = parseWalFileName(name);
    if (parsed === undefined) return;
    const { systemIdentifier, options } = this;
    if (parsed.kind === 'history') {
      const content = await readFile(path);
      try {
        for (const [timeline, point] of parseHistory(content.toString('utf8'))) this.switchPoints.set(timeline, point);
      } catch (error) {
        // Archived all the same: it is PostgreSQL's file, and recovery reads it, not us.
        this.log.warn({ target: this.target, file: name, err: messageOf(error) }, 'cannot read the switch points of the history file');
      }
      this.noteTimeline(parsed.timeline);
      const manifest = await this.storeOnce(path, name, { fileKind: 'history', timeline: parsed.timeline });
      options.counts.history += 1;
      this.monitor.noteArchived(manifest, undefined);
      await this.announce(manifest, messageIds.walHistoryArchived(systemIdentifier, name, manifest.data.sha256));
      return;
    }
    await checkSegmentBelongs(path, name, this.cluster);
    const start = parseLsn(segmentStartLsn(name));
    const end = start + SEGMENT_BYTES;
    const manifest = await this.storeOnce(path, name, { fileKind: 'segment', timeline: parsed.timeline, startLsn: formatLsn(start), endLsn: formatLsn(end) });
    // The closed segment supersedes the uploads of its open state.
    await options.archive.remove(this.target, systemIdentifier, `${name}.partial`);
    this.partialEnds.delete(`${name}.partial`);
    options.counts.segments += 1;
    this.monitor.noteArchived(manifest, end);
    await this.announce(manifest, messageIds.walSegmentArchived(systemIdentifier, name));
  }

  /** The open segment (or an older timeline's last one, left behind at a switch). */
  async archivePartial(path: string, name: string): Promise<void> {
    const parsed = parseWalFileName(name);
    if (parsed?.kind !== 'segment') return;
    const { systemIdentifier } = this;
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
      sample = await this.monitor.sample();
    } catch (error) {
      cannotYet(`the flush position cannot be read: ${messageOf(error)}`);
      this.log.debug({ target: this.target, file: name, err: messageOf(error) }, 'cannot read the flush position; the partial segment waits for the next interval');
      return;
    }
    if (sample.systemIdentifier !== systemIdentifier) {
      cannotYet('the server is another cluster now');
      return; // another cluster: the archiver's tick follows it
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
      const switchPoint = await this.switchPointOf(parsed.timeline);
      end = switchPoint === undefined ? undefined : end < switchPoint ? end : switchPoint;
    }
    if (end !== undefined && end <= start) return; // nothing of this segment is flushed yet
    const previous = this.partialEnds.get(name);
    if (previous !== undefined && (end === undefined || previous === 'unknown' || end <= previous)) return; // it did not grow
    if ((await checkSegmentBelongs(path, name, this.cluster)) === 'empty') return;

    const manifest = await this.upload(path, name, { fileKind: 'partial', timeline: parsed.timeline, startLsn: formatLsn(start), ...(end !== undefined ? { endLsn: formatLsn(end) } : {}) });
    this.partialEnds.set(name, end ?? 'unknown');
    this.options.counts.partials += 1;
    this.monitor.noteArchived(manifest, end);
    await this.announce(manifest, messageIds.walPartialArchived(systemIdentifier, name, end === undefined ? { sha256: manifest.data.sha256 } : { endLsn: formatLsn(end) }), sample);
  }

  /** Where `timeline` ended: from the history files seen, else from the newest archived one. */
  private async switchPointOf(timeline: number): Promise<bigint | undefined> {
    const known = this.switchPoints.get(timeline);
    if (known !== undefined) return known;
    try {
      const manifest = await this.options.archive.readManifest(this.target, this.systemIdentifier, historyFileName(this.newestTimeline));
      if (manifest === undefined) return undefined;
      const content = await this.readBack(manifest);
      for (const [parent, point] of parseHistory(content.toString('utf8'))) this.switchPoints.set(parent, point);
    } catch (error) {
      this.log.warn({ target: this.target, timeline, err: messageOf(error) }, 'cannot read the archived history file; the old timeline\'s partial segment is archived without an end position');
    }
    return this.switchPoints.get(timeline);
  }

  /**
   * Commits a closed file unless the archive already holds the same bytes (a file offered again
   * after a restart): then the committed manifest is returned and only announced again.
   */
  private async storeOnce(path: string, name: string, facts: FileFacts): Promise<WalFileManifest> {
    const existing = await this.options.archive.readManifest(this.target, this.systemIdentifier, name);
    if (existing !== undefined) {
      const local = await sha256OfStream((await open(path, 'r')).createReadStream());
      let same = false;
      if (local.bytes === existing.data.rawBytes) {
        try {
          // Hashed as it decodes: nothing is held in memory.
          same = (await sha256OfStream(await openDecoded(this.options.archive, existing, this.options.keys))).sha256 === local.sha256;
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

  /** A small archived file (a history file), whole. */
  private async readBack(manifest: WalFileManifest): Promise<Buffer> {
    return readAll(await openDecoded(this.options.archive, manifest, this.options.keys));
  }

  /** Encodes and stores the file, then commits its manifest (manifest last). */
  private async upload(path: string, name: string, facts: FileFacts): Promise<WalFileManifest> {
    const { options } = this;
    // Opened first: a partial renamed to its segment name meanwhile is still read whole.
    const handle = await open(path, 'r');
    const source = handle.createReadStream();
    const { compression, compressionLevel, key } = options.encode;
    const encoded = encodeStream(source, { compression, ...(compressionLevel !== undefined ? { compressionLevel } : {}), ...(key ? { key } : {}) });
    const saving = options.archive.saveData(this.target, this.systemIdentifier, name, encoded.output as Readable);
    // A failed upload aborts the encoding and the file read; the upload's own error is the one reported.
    const [saved, summary] = await settleFirstCause([saving, encoded.summary] as const);
    const manifest: WalFileManifest = {
      manifestVersion: MANIFEST_VERSION,
      engine: 'pg',
      target: this.target,
      systemIdentifier: this.systemIdentifier,
      file: name,
      fileKind: facts.fileKind,
      timeline: facts.timeline,
      ...(facts.startLsn !== undefined ? { startLsn: facts.startLsn } : {}),
      ...(facts.endLsn !== undefined ? { endLsn: facts.endLsn } : {}),
      archivedAt: options.clock().toISOString(),
      agent: { id: options.agent.id, version: options.agent.version },
      pipeline: summary.pipeline,
      data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
    };
    await options.archive.commit(manifest);
    options.counts.storedBytes += summary.storedBytes;
    return manifest;
  }

  /** wal.archived, with the lag right now. A NATS outage must not stop the archiving itself. */
  private async announce(manifest: WalFileManifest, msgId: string, fresh?: PrimarySample): Promise<void> {
    if (fresh === undefined) {
      try {
        await this.monitor.sample();
      } catch {
        // the lag fields are left out
      }
    }
    const now = this.monitor.now();
    const lagBytes = this.monitor.lagBytes();
    const lagSeconds = this.monitor.lagSeconds(now);
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
}
