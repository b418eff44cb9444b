// The timer loop. It sleeps until the next slot of any schedule, but never longer than
// `maxSleepMs`, so a wall-clock jump (suspend, NTP step) is noticed within that time.
import type { JetStreamClient } from 'nats';
import type { TidemarkConfig } from '@tidemark/config';
import type { Logger } from '@tidemark/runtime';
import { nextWakeUp, schedulesFromConfig, type PlannerOptions } from './schedule/planner.js';
import { runTick, type TickReport } from './schedule/tick.js';
import type { ScheduleStateStore } from './schedule/state-store.js';
import { KvStateStore } from './adapters/kv-state-store.js';
import { createJetStreamCommandSender } from './adapters/jetstream-command-sender.js';
import type { CommandSender } from './handlers/request-scheduled-backup.js';

export interface SchedulerContext {
  readonly js: JetStreamClient;
  readonly logger: Logger;
}

export interface SchedulerOptions {
  readonly clock?: () => Date;
  /** Longest sleep between passes (default 30 s). */
  readonly maxSleepMs?: number;
  readonly planner?: PlannerOptions;
  /** Overrides for tests; default the KV bucket and the JetStream sender. */
  readonly store?: ScheduleStateStore;
  readonly sender?: CommandSender;
  /** Called after every pass (tests and metrics). */
  readonly onTick?: (report: TickReport) => void;
}

export interface RunningScheduler {
  /** Stops the loop and waits for the pass in progress to finish. */
  stop(): Promise<void>;
}

export const DEFAULT_MAX_SLEEP_MS = 30_000;
/** Wake a hair after the slot: timers and the wall clock can disagree by a millisecond or two. */
const WAKE_MARGIN_MS = 5;

export async function startScheduler(config: TidemarkConfig, ctx: SchedulerContext, options: SchedulerOptions = {}): Promise<RunningScheduler> {
  const { logger } = ctx;
  const clock = options.clock ?? (() => new Date());
  const maxSleepMs = options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
  const schedules = schedulesFromConfig(config);
  const abort = new AbortController();
  const store = options.store ?? (await KvStateStore.open(ctx.js));
  const sender = options.sender ?? createJetStreamCommandSender(ctx.js, logger, { signal: abort.signal });

  if (schedules.length === 0) logger.warn('no target has a schedule; the scheduler has nothing to do');
  else logger.info({ schedules: schedules.map((s) => `${s.key} (${s.cron} ${s.timezone})`) }, 'scheduler started');

  const warnHeld = heldScheduleWarner(logger);
  const loop = (async () => {
    while (!abort.signal.aborted && schedules.length > 0) {
      try {
        const now = clock();
        const report = await runTick(schedules, { store, sender, logger, ...(options.planner ? { planner: options.planner } : {}) }, now);
        warnHeld(report, now);
        options.onTick?.(report);
      } catch (error) {
        // Reading the state failed (NATS away): try again after the next sleep.
        if (!abort.signal.aborted) logger.error({ err: error }, 'scheduler pass failed; retrying after the next sleep');
      }
      const now = clock();
      const next = nextWakeUp(schedules, now);
      const untilNext = next ? next.getTime() - now.getTime() + WAKE_MARGIN_MS : maxSleepMs;
      await sleep(Math.max(0, Math.min(maxSleepMs, untilNext)), abort.signal);
    }
  })();

  return {
    async stop() {
      abort.abort();
      await loop;
      logger.info('scheduler stopped');
    },
  };
}

/**
 * Warns once when a schedule's recorded slot is ahead of the clock, and again only after the
 * clock has caught up in between: one line per episode, not one per pass.
 */
function heldScheduleWarner(logger: Logger): (report: TickReport, now: Date) => void {
  const held = new Set<string>();
  return (report, now) => {
    const heldNow = new Set(report.held.map((h) => h.key));
    for (const key of held) if (!heldNow.has(key)) held.delete(key);
    for (const { key, recordedSlot } of report.held) {
      if (held.has(key)) continue;
      held.add(key);
      const aheadMs = recordedSlot.getTime() - now.getTime();
      logger.warn(
        { schedule: key, recordedSlot: recordedSlot.toISOString(), now: now.toISOString(), aheadMs },
        `the clock is ${Math.round(aheadMs / 1000)} s behind the last slot recorded for this schedule (it stepped back, or another scheduler's clock is ahead): slots up to it do not fire again, and nothing fires until the clock passes it`,
      );
    }
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
