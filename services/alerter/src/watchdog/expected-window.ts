// How long a target may go without a successful backup before that is an alert: the target's
// `expectedWithinMinutes`, or else twice the largest gap between consecutive fires of its
// schedules (so one missed or slow run is tolerated, two in a row are not).
import { CronExpressionParser } from 'cron-parser';
import { effectiveTarget, type Target, type TidemarkConfig } from '@tidemark/config';
import type { Engine } from '@tidemark/contracts';

export interface WatchedTarget {
  readonly engine: Engine;
  readonly target: string;
  /** 'verified': only verify.passed counts; 'completed': backup.completed counts (verify off). */
  readonly evidence: 'verified' | 'completed';
  readonly expectedWithinMs: number;
}

/** Slots sampled per schedule: enough to see a weekly or weekday pattern many times over. */
const SLOTS_PER_SCHEDULE = 64;

/**
 * The largest gap between consecutive slots of all the schedules together, looking ahead from
 * `from`. Each schedule is sampled for its next slots; the look-ahead ends where the shortest
 * sample ends, so the end of a frequent schedule's sample is never mistaken for a gap.
 */
export function largestGapMs(schedules: readonly { cron: string; timezone: string }[], from: Date): number | undefined {
  let end = Number.POSITIVE_INFINITY;
  const all: number[] = [];
  for (const s of schedules) {
    const expression = CronExpressionParser.parse(s.cron, { currentDate: from, tz: s.timezone });
    let last = from.getTime();
    try {
      for (let i = 0; i < SLOTS_PER_SCHEDULE; i += 1) {
        last = expression.next().getTime();
        all.push(last);
      }
    } catch {
      // An expression that never (or rarely) matches, like "0 0 30 2 *": its sample ends early.
    }
    if (last > from.getTime()) end = Math.min(end, last);
  }
  const slots = [...new Set(all.filter((t) => t <= end))].sort((a, b) => a - b);
  let largest: number | undefined;
  for (let i = 1; i < slots.length; i += 1) {
    const gap = (slots[i] as number) - (slots[i - 1] as number);
    if (largest === undefined || gap > largest) largest = gap;
  }
  return largest;
}

export function expectedWindowMs(target: Target, now: Date): number | undefined {
  if (target.expectedWithinMinutes !== undefined) return target.expectedWithinMinutes * 60_000;
  if (target.schedules.length === 0) return undefined;
  const gap = largestGapMs(target.schedules, now);
  return gap === undefined ? undefined : 2 * gap;
}

/** The targets the watchdog looks after: those with schedules or an explicit expectation. */
export function watchedTargets(config: TidemarkConfig, now: Date): WatchedTarget[] {
  return config.targets.flatMap((target) => {
    const expectedWithinMs = expectedWindowMs(target, now);
    if (expectedWithinMs === undefined) return [];
    const evidence = effectiveTarget(config, target).verify ? 'verified' : 'completed';
    return [{ engine: target.engine, target: target.name, evidence, expectedWithinMs }];
  });
}
