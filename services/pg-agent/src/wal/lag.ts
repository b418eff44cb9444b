// How far the WAL archive trails the primary, in bytes and in seconds.
//
// Bytes are easy: the primary's current LSN minus the archive's end. Seconds need to know WHEN
// the primary wrote the first byte not yet archived, which PostgreSQL does not record. So every
// tick we note (time, primary LSN). The oldest unarchived byte sits at the archive's end E; the
// newest sample with LSN <= E was taken before that byte existed, so "now minus that sample's
// time" bounds its age from above (never flatters the RPO, off by at most one tick). When the
// newest sample is itself <= E, everything the primary had written is archived: lag 0.
//
// Samples older than the newest one <= E can never matter again and are dropped; the ring is
// thinned (every other sample) if a long outage makes it grow past its cap.

export interface LagSample {
  readonly atMs: number;
  readonly lsn: bigint;
}

export const MAX_LAG_SAMPLES = 4096;

export class LagTracker {
  private samples: LagSample[] = [];

  constructor(private readonly maxSamples = MAX_LAG_SAMPLES) {}

  /** Notes the primary's LSN at a moment; out-of-order or backwards samples are ignored. */
  record(atMs: number, lsn: bigint): void {
    const last = this.samples.at(-1);
    if (last !== undefined && (atMs < last.atMs || lsn < last.lsn)) {
      // A backwards LSN is another cluster or a restored one: start over.
      if (lsn < last.lsn) this.samples = [{ atMs, lsn }];
      return;
    }
    this.samples.push({ atMs, lsn });
    if (this.samples.length > this.maxSamples) {
      // Keep the first (the oldest bound), the newest, and every other one between.
      const last = this.samples.length - 1;
      this.samples = this.samples.filter((_, index) => index === 0 || index === last || index % 2 === 1);
    }
  }

  /** The newest primary LSN seen, if any. */
  latest(): LagSample | undefined {
    return this.samples.at(-1);
  }

  /**
   * Seconds since the oldest WAL not yet archived was written, given the archive's end. Undefined
   * before the first sample. With nothing archived yet (or the archive behind every sample) it is
   * the time since the first sample: a lower bound, the best there is.
   */
  lagSeconds(nowMs: number, archivedEnd: bigint | undefined): number | undefined {
    const newest = this.samples.at(-1);
    if (newest === undefined) return undefined;
    if (archivedEnd !== undefined && newest.lsn <= archivedEnd) return 0;
    let bound = this.samples[0] as LagSample;
    if (archivedEnd !== undefined) {
      for (let i = this.samples.length - 1; i >= 0; i -= 1) {
        const sample = this.samples[i] as LagSample;
        if (sample.lsn <= archivedEnd) {
          bound = sample;
          break;
        }
      }
    }
    return Math.max(0, (nowMs - bound.atMs) / 1000);
  }

  /** Drops samples that can no longer bound the lag once the archive has reached `archivedEnd`. */
  prune(archivedEnd: bigint): void {
    let keepFrom = 0;
    for (let i = this.samples.length - 1; i >= 0; i -= 1) {
      if ((this.samples[i] as LagSample).lsn <= archivedEnd) {
        keepFrom = i;
        break;
      }
    }
    if (keepFrom > 0) this.samples = this.samples.slice(keepFrom);
  }

  clear(): void {
    this.samples = [];
  }

  get size(): number {
    return this.samples.length;
  }
}
