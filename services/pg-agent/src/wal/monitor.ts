// Watches the archived cluster: samples the primary (its WAL position, the slot), knows how far
// the archive has got, and raises `wal.problem` when the slot holds back too much WAL, the
// archive (or the receiver) falls behind by more than maxLagSeconds, or the spool has no room
// for the next segment.
import { statfs } from 'node:fs/promises';
import { SCHEMA_VERSION, WalProblem, messageIds, subjects, type WalFileKind, type WalFileManifest, type WalProblemKind } from '@tidemark/contracts';
import { formatLsn, WAL_SEGMENT_SIZE } from '@tidemark/pg';
import type { EventPublisher } from '@tidemark/runtime';
import { LagTracker } from './lag.js';
import type { PrimarySample, WalPrimary } from './primary.js';

export interface ArchiverLogger {
  debug(details: object, message: string): void;
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface ArchivedFile {
  readonly file: string;
  readonly fileKind: WalFileKind;
  readonly endLsn: string | undefined;
  readonly at: string;
}

export interface WalMonitorOptions {
  readonly target: string;
  readonly slot: string;
  /** pg_receivewal's spool, whose free space is watched. */
  readonly spoolDir: string;
  readonly maxSlotRetainedMb: number;
  readonly maxLagSeconds: number;
  readonly primary: WalPrimary;
  readonly publisher: EventPublisher;
  readonly logger: ArchiverLogger;
  readonly clock: () => Date;
  /** A problem of one kind is published at most this often. */
  readonly problemIntervalMs: number;
}

const MiB = 1024 * 1024;

export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export class WalMonitor {
  private readonly lag = new LagTracker();
  private readonly problemPublishedAt = new Map<WalProblemKind, number>();
  private followed: string | undefined;
  private end: bigint | undefined;
  private archived: ArchivedFile | undefined;
  private latest: PrimarySample | undefined;
  private reachable: boolean | undefined;
  private error: string | undefined;

  constructor(private readonly options: WalMonitorOptions) {}

  /** The cluster being archived (undefined until archiving started for one). */
  get systemIdentifier(): string | undefined {
    return this.followed;
  }

  get archivedEnd(): bigint | undefined {
    return this.end;
  }

  get lastArchived(): ArchivedFile | undefined {
    return this.archived;
  }

  get lastSample(): PrimarySample | undefined {
    return this.latest;
  }

  /** Whether the server answered the last sample (undefined before the first). */
  get sourceReachable(): boolean | undefined {
    return this.reachable;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  noteError(error: unknown): void {
    this.error = messageOf(error);
  }

  clearError(): void {
    this.error = undefined;
  }

  now(): number {
    return this.options.clock().getTime();
  }

  /** Archiving (re)starts for this cluster. */
  follow(systemIdentifier: string): void {
    this.followed = systemIdentifier;
  }

  /** The target became another cluster: nothing known about the old one counts any more. */
  forget(): void {
    this.followed = undefined;
    this.end = undefined;
    this.latest = undefined;
    this.lag.clear();
  }

  /** One sample of the primary; feeds the lag ring (only for the cluster being archived). */
  async sample(): Promise<PrimarySample> {
    let sample: PrimarySample;
    try {
      sample = await this.options.primary.sample(this.options.slot);
      this.reachable = true;
    } catch (error) {
      this.reachable = false;
      throw error;
    }
    if (this.followed === undefined || sample.systemIdentifier === this.followed) {
      this.latest = sample;
      this.lag.record(this.now(), sample.currentLsn);
    }
    return sample;
  }

  noteArchived(manifest: WalFileManifest, end: bigint | undefined): void {
    if (end !== undefined && (this.end === undefined || end > this.end)) {
      this.end = end;
      this.lag.prune(end);
    }
    this.archived = { file: manifest.file, fileKind: manifest.fileKind, endLsn: manifest.endLsn, at: manifest.archivedAt };
  }

  lagBytes(): number | undefined {
    if (this.latest === undefined || this.end === undefined) return undefined;
    return Math.max(0, Number(this.latest.currentLsn - this.end));
  }

  lagSeconds(now: number): number | undefined {
    return this.lag.lagSeconds(now, this.end);
  }

  async checkSlot(sample: PrimarySample): Promise<void> {
    const slot = sample.slot;
    if (slot?.restartLsn === undefined) return; // missing: the receiver creates it
    const retained = Number(sample.currentLsn - slot.restartLsn);
    const limit = this.options.maxSlotRetainedMb * MiB;
    if (retained <= limit) return;
    const retainedMb = Math.round(retained / MiB);
    const name = this.options.slot;
    await this.problem('slot_growth', {
      summary: `replication slot ${name} on ${this.options.target} holds back ${retainedMb} MiB of WAL (limit ${this.options.maxSlotRetainedMb} MiB, slot ${slot.active ? 'active' : 'inactive'}): ${slot.active ? 'the archive is far behind' : 'is the pg-agent archiving this target?'}; if the slot is no longer wanted, drop it (pg_drop_replication_slot) before the disk fills`,
      retainedBytes: retained,
      limitBytes: limit,
      details: { slot: name, active: slot.active, walStatus: slot.walStatus ?? null, restartLsn: formatLsn(slot.restartLsn), currentLsn: formatLsn(sample.currentLsn) },
    });
  }

  /**
   * pg_receivewal pads every new segment to its full 16 MiB before writing WAL into it: with less
   * free than that it cannot start the next one and stops streaming (ENOSPC) until space returns.
   * Only while it is down: at a segment switch a healthy spool briefly holds three segments (the
   * last one handed over, the one just closed, the new one), which may leave less than that free.
   */
  async checkSpool(receiverDown: boolean): Promise<void> {
    if (!receiverDown) return;
    const { spoolDir, target, slot } = this.options;
    const info = await statfs(spoolDir).catch(() => undefined);
    if (info === undefined) return; // not created yet: the receiver creates it
    const freeBytes = info.bavail * info.bsize;
    if (freeBytes >= WAL_SEGMENT_SIZE) return;
    await this.problem('spool_full', {
      summary: `the WAL spool ${spoolDir} of ${target} has ${(freeBytes / MiB).toFixed(1)} MiB free, less than one 16 MiB segment: pg_receivewal cannot start the next segment, so WAL archiving stops (slot ${slot} keeps the WAL on the server meanwhile); free space on ${spoolDir} (or give pg.workDir a larger disk) and archiving resumes by itself`,
      details: { spoolDir, freeBytes, segmentBytes: WAL_SEGMENT_SIZE },
    });
  }

  /** `receiverDownSinceMs`: since when pg_receivewal has not been streaming (undefined while it is). */
  async checkLag(now: number, receiverDownSinceMs: number | undefined): Promise<void> {
    const { target, maxLagSeconds } = this.options;
    const lagSeconds = this.lagSeconds(now) ?? 0;
    const downSeconds = receiverDownSinceMs === undefined ? 0 : (now - receiverDownSinceMs) / 1000;
    const worst = Math.max(lagSeconds, downSeconds);
    if (worst <= maxLagSeconds) return;
    const rounded = Math.round(worst);
    const summary =
      downSeconds >= lagSeconds
        ? `the WAL receiver of ${target} has been down for ${rounded} s (limit ${maxLagSeconds} s)${this.error ? `: ${this.error}` : ''}; WAL written meanwhile is only on the server (held by slot ${this.options.slot})`
        : `the WAL archive of ${target} is ${rounded} s behind the server (limit ${maxLagSeconds} s)${this.error ? `; last error: ${this.error}` : ''}; check storage and the pg-agent's log`;
    await this.problem('lagging', {
      summary,
      lagSeconds: rounded,
      limitSeconds: maxLagSeconds,
      details: { receiverDownSeconds: Math.round(downSeconds), archivedEndLsn: this.end === undefined ? null : formatLsn(this.end), lagBytes: this.lagBytes() ?? null },
    });
  }

  /** Publishes a wal.problem at most once per problemIntervalMs per kind (the msg id carries the time bucket). */
  private async problem(kind: WalProblemKind, fields: Omit<WalProblem, 'schemaVersion' | 'engine' | 'target' | 'occurredAt' | 'problem'>): Promise<void> {
    const { target, problemIntervalMs, logger } = this.options;
    const now = this.now();
    const last = this.problemPublishedAt.get(kind);
    if (last !== undefined && now - last < problemIntervalMs) return;
    this.problemPublishedAt.set(kind, now);
    logger.warn({ target, problem: kind }, fields.summary);
    const event: WalProblem = {
      schemaVersion: SCHEMA_VERSION,
      engine: 'pg',
      target,
      occurredAt: new Date(now).toISOString(),
      problem: kind,
      ...(this.followed !== undefined ? { systemIdentifier: this.followed } : {}),
      ...fields,
    };
    try {
      await this.options.publisher.publish(subjects.walProblem('pg', target), WalProblem, event, messageIds.walReceiverProblem(target, kind, Math.floor(now / problemIntervalMs)));
    } catch (error) {
      this.problemPublishedAt.delete(kind);
      logger.warn({ target, problem: kind, err: messageOf(error) }, 'could not publish the wal problem; retrying next tick');
    }
  }
}
