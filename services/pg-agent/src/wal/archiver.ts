// Continuous WAL archiving of one pg target: a supervised pg_receivewal streams the target's WAL
// over a physical slot into a local spool (supervisor.ts); what it writes is uploaded into the WAL
// archive and announced with `wal.archived` (uploader.ts); the slot and the lag are watched
// (`wal.problem`, monitor.ts). This class wires them and answers status and health.
//
// Everything the archiver learns from PostgreSQL comes from one cheap query on one persistent
// connection (see primary.ts), per tick and per upload.
import type { Compression } from '@tidemark/contracts';
import { formatLsn, type WalReceiver, type WalReceiverOptions } from '@tidemark/pg';
import type { EncryptionKey, KeyRing } from '@tidemark/pipeline';
import type { EventPublisher } from '@tidemark/runtime';
import type { WalArchive } from '@tidemark/storage';
import { WalMonitor, type ArchivedFile, type ArchiverLogger } from './monitor.js';
import type { WalPrimary } from './primary.js';
import { ReceiverSupervisor } from './supervisor.js';
import { WalUploader, type UploadCounts } from './uploader.js';

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

export class WalArchiver {
  private readonly monitor: WalMonitor;
  private readonly supervisor: ReceiverSupervisor;
  private readonly uploads: UploadCounts = { segments: 0, partials: 0, history: 0, storedBytes: 0 };
  private uploader: WalUploader | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(private readonly options: WalArchiverOptions) {
    const clock = options.clock ?? (() => new Date());
    const { target, slot, logger } = options;
    this.monitor = new WalMonitor({
      target,
      slot,
      spoolDir: options.spoolDir,
      maxSlotRetainedMb: options.maxSlotRetainedMb,
      maxLagSeconds: options.maxLagSeconds,
      primary: options.primary,
      publisher: options.publisher,
      logger,
      clock,
      problemIntervalMs: options.problemIntervalMs ?? 10 * 60_000,
    });
    this.supervisor = new ReceiverSupervisor({
      target,
      slot,
      spoolDir: options.spoolDir,
      osUser: options.osUser,
      partialIntervalSeconds: options.partialIntervalSeconds,
      startReceiver: options.startReceiver,
      startRetryMs: options.startRetryMs ?? { initial: 1000, max: 30_000 },
      ...(options.receiverRestartDelayMs ? { receiverRestartDelayMs: options.receiverRestartDelayMs } : {}),
      ...(options.scanIntervalMs !== undefined ? { scanIntervalMs: options.scanIntervalMs } : {}),
      logger,
      monitor: this.monitor,
      begin: (sample) => {
        const uploader = new WalUploader({
          target,
          slot,
          systemIdentifier: sample.systemIdentifier,
          timeline: sample.timeline,
          encode: options.encode,
          keys: options.keys,
          archive: options.archive,
          publisher: options.publisher,
          agent: options.agent,
          logger,
          clock,
          monitor: this.monitor,
          counts: this.uploads,
        });
        this.uploader = uploader;
        return { onSegment: (path, name) => uploader.archiveClosedFile(path, name), onPartial: (path, name) => uploader.archivePartial(path, name) };
      },
    });
  }

  get target(): string {
    return this.options.target;
  }

  /**
   * Starts in the background and returns at once: an unreachable server is retried (with
   * backoff) without failing the agent. The slot is checked before streaming resumes.
   */
  start(): void {
    if (this.tickTimer !== undefined || this.stopping) return;
    this.supervisor.start();
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
      await this.supervisor.stop();
      await this.ticking;
      await this.options.primary.close();
    })();
    return this.stopped;
  }

  status(): WalArchiverStatus {
    const monitor = this.monitor;
    const now = monitor.now();
    const receiver = this.supervisor.receiverStatus();
    const sample = monitor.lastSample;
    const retained = sample?.slot?.restartLsn !== undefined ? Number(sample.currentLsn - sample.slot.restartLsn) : undefined;
    const receiverUp = !this.stopping && receiver?.running === true && monitor.sourceReachable !== false;
    // The tick notes when it went down; between ticks a fresh outage counts from now.
    const downSinceMs = receiverUp ? undefined : (this.supervisor.downSinceMs ?? now);
    const downSeconds = downSinceMs === undefined ? 0 : (now - downSinceMs) / 1000;
    const state = this.stopping ? 'stopped' : receiver === undefined ? 'starting' : receiverUp ? 'running' : 'receiver down';
    const archivedEnd = monitor.archivedEnd;
    return {
      target: this.options.target,
      slot: this.options.slot,
      state,
      systemIdentifier: monitor.systemIdentifier,
      receiver: receiver === undefined ? undefined : { running: receiver.running, pid: receiver.pid, restarts: receiver.restarts },
      receiverUp,
      receiverDownSince: downSinceMs === undefined ? undefined : new Date(downSinceMs).toISOString(),
      sourceReachable: monitor.sourceReachable,
      lastArchived: monitor.lastArchived,
      archivedEndLsn: archivedEnd === undefined ? undefined : formatLsn(archivedEnd),
      primaryLsn: sample === undefined ? undefined : formatLsn(sample.currentLsn),
      lagBytes: monitor.lagBytes(),
      lagSeconds: monitor.lagSeconds(now),
      receiverDownSeconds: Math.max(0, downSeconds),
      slotState: sample?.slot === undefined ? undefined : { active: sample.slot.active, retainedBytes: retained, walStatus: sample.slot.walStatus },
      uploads: { ...this.uploads },
      lastError: monitor.lastError,
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

  private async tick(): Promise<void> {
    if (this.stopping) return;
    const monitor = this.monitor;
    try {
      const sample = await monitor.sample();
      if (monitor.systemIdentifier !== undefined && this.supervisor.streamingCluster && sample.systemIdentifier !== monitor.systemIdentifier) {
        this.uploader = undefined;
        await this.supervisor.followNewCluster(sample.systemIdentifier);
        return;
      }
      this.uploader?.noteTimeline(sample.timeline);
      await monitor.checkSlot(sample);
    } catch (error) {
      monitor.noteError(error);
      this.options.logger.debug({ target: this.target, err: monitor.lastError }, 'cannot sample the server for wal monitoring');
    }
    const now = monitor.now();
    this.supervisor.noteStreaming(now);
    await monitor.checkLag(now, this.supervisor.downSinceMs);
    await monitor.checkSpool(this.supervisor.downSinceMs !== undefined);
  }
}
