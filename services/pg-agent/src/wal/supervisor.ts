// Keeps a pg_receivewal streaming for the target: starts it once the server answers (retrying
// with backoff while it does not, without failing the agent), moves a spool of another cluster
// aside first, starts it afresh when the target becomes another cluster, and notes since when it
// has not been streaming. pg_receivewal's own exits are restarted (with backoff) by the receiver.
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseWalFileName, type WalReceiver, type WalReceiverOptions, type WalReceiverStatus } from '@tidemark/pg';
import { retryDelay } from '@tidemark/runtime';
import { messageOf, type ArchiverLogger, type WalMonitor } from './monitor.js';
import type { PrimarySample } from './primary.js';
import { readSegmentHeader } from './segment-file.js';

/** What takes the files of one cluster from the receiver. */
export type ClusterFiles = Pick<WalReceiverOptions, 'onSegment' | 'onPartial'>;

export interface ReceiverSupervisorOptions {
  readonly target: string;
  readonly slot: string;
  readonly spoolDir: string;
  readonly osUser: string;
  readonly partialIntervalSeconds: number;
  readonly startReceiver: (options: WalReceiverOptions) => Promise<WalReceiver>;
  /** Retry delays while the server cannot be reached at start. */
  readonly startRetryMs: { readonly initial: number; readonly max: number };
  readonly receiverRestartDelayMs?: { readonly initial: number; readonly max: number };
  readonly scanIntervalMs?: number;
  readonly logger: ArchiverLogger;
  readonly monitor: WalMonitor;
  /** Archiving starts for the cluster of this sample: returns what uploads its files. */
  readonly begin: (sample: PrimarySample) => ClusterFiles;
}

export class ReceiverSupervisor {
  private readonly log: ArchiverLogger;
  private readonly monitor: WalMonitor;
  private stopping = false;
  private booting: Promise<void> | undefined;
  private restarting: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private receiver: WalReceiver | undefined;
  private downSince: number | undefined;

  constructor(private readonly options: ReceiverSupervisorOptions) {
    this.log = options.logger;
    this.monitor = options.monitor;
  }

  /** Starts in the background and returns at once. */
  start(): void {
    if (this.booting !== undefined || this.stopping) return;
    this.downSince = this.monitor.now();
    this.booting = this.boot();
  }

  /** Undefined until pg_receivewal was first started (or while it is started for a new cluster). */
  receiverStatus(): WalReceiverStatus | undefined {
    return this.receiver?.status();
  }

  /** Since when pg_receivewal has not been streaming, as of the last `noteStreaming` (undefined: it was). */
  get downSinceMs(): number | undefined {
    return this.downSince;
  }

  /** Called each monitoring tick: streaming means pg_receivewal runs and the server answered. */
  noteStreaming(now: number): void {
    if (this.receiver?.status().running === true && this.monitor.sourceReachable !== false) this.downSince = undefined;
    else this.downSince ??= now;
  }

  /** Whether a receiver was started for the cluster archived so far. */
  get streamingCluster(): boolean {
    return this.receiver !== undefined;
  }

  /** The target is another cluster now (re-initialised or replaced): archiving starts afresh for it. */
  followNewCluster(systemIdentifier: string): Promise<void> {
    this.restarting ??= (async () => {
      this.log.error({ target: this.options.target, was: this.monitor.systemIdentifier, now: systemIdentifier }, 'the target is a different cluster now (re-initialised or replaced); restarting wal archiving for it');
      const receiver = this.receiver;
      this.receiver = undefined;
      await receiver?.stop();
      this.monitor.forget();
      if (this.stopping) return;
      await this.booting;
      this.booting = this.boot();
    })().finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  /** Stops pg_receivewal (SIGINT) after the upload in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    // A restart for a new cluster first: it may be starting a new boot.
    await this.restarting;
    await this.booting;
    await this.receiver?.stop();
  }

  private async boot(): Promise<void> {
    const retry = this.options.startRetryMs;
    let attempts = 0;
    while (!this.stopping) {
      try {
        const sample = await this.monitor.sample();
        this.monitor.follow(sample.systemIdentifier);
        const files = this.options.begin(sample);
        await this.setAsideForeignSpool(sample.systemIdentifier);
        // Before streaming resumes: a slot that held WAL back while we were away is reported now.
        await this.monitor.checkSlot(sample);
        const receiver = await this.options.startReceiver({
          slot: this.options.slot,
          dir: this.options.spoolDir,
          osUser: this.options.osUser,
          statusIntervalSeconds: this.options.partialIntervalSeconds,
          // The archiver reads the slot itself, on its one monitor connection.
          pollSlot: false,
          logger: this.log,
          ...files,
          ...(this.options.receiverRestartDelayMs ? { restartDelayMs: this.options.receiverRestartDelayMs } : {}),
          ...(this.options.scanIntervalMs !== undefined ? { scanIntervalMs: this.options.scanIntervalMs } : {}),
        });
        this.receiver = receiver;
        if (this.stopping) return;
        this.monitor.clearError();
        this.log.info({ target: this.options.target, slot: this.options.slot, systemIdentifier: sample.systemIdentifier, spool: this.options.spoolDir }, 'wal archiving started');
        return;
      } catch (error) {
        attempts += 1;
        const delay = retryDelay(attempts, retry.initial, retry.max);
        this.monitor.noteError(error);
        // Loud once, then quiet: a server that is down for hours must not flood the log.
        const log = attempts === 1 || attempts % 20 === 0 ? this.log.warn.bind(this.log) : this.log.debug.bind(this.log);
        log({ target: this.options.target, attempts, retryInMs: delay, err: messageOf(error) }, 'cannot start wal archiving yet; retrying');
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
    const { spoolDir } = this.options;
    const names = await readdir(spoolDir).catch(() => [] as string[]);
    for (const name of names.filter((n) => parseWalFileName(n)?.kind === 'segment').sort().reverse()) {
      const header = await readSegmentHeader(join(spoolDir, name)).catch(() => undefined);
      if (header === undefined) continue;
      if (header.systemIdentifier === systemIdentifier) return;
      let aside = `${spoolDir}.cluster-${header.systemIdentifier}`;
      if (await stat(aside).then(() => true, () => false)) aside = `${aside}-${this.monitor.now()}`;
      await rename(spoolDir, aside);
      this.log.error(
        { target: this.options.target, systemIdentifier, spoolSystemIdentifier: header.systemIdentifier, keptIn: aside },
        'the wal spool belongs to another cluster (the target was re-initialised); it was moved aside and archiving starts afresh for the new cluster',
      );
      return;
    }
  }
}
