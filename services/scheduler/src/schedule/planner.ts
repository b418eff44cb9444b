// The pure planner: given the schedules, the last slot recorded for each, and the time, what
// should happen now. No clocks, no NATS; the timer loop and the state store live elsewhere.
import type { ArtifactKind, Engine } from '@tidemark/contracts';
import type { TidemarkConfig } from '@tidemark/config';
import { latestSlotAtOrBefore, nextSlot, slotsBetween } from './cron.js';

export interface PlannedSchedule {
  /** `<engine>.<target>.<scheduleId>`: the state key. */
  readonly key: string;
  readonly engine: Engine;
  readonly target: string;
  readonly scheduleId: string;
  readonly cron: string;
  readonly timezone: string;
  readonly kind: ArtifactKind;
  /** files: this schedule's backups read and hash every file again. */
  readonly fullRehash?: boolean;
  /** Fire a slot missed while the scheduler was down. */
  readonly catchUp: boolean;
}

/** Last slot recorded per schedule key. A missing key means the schedule has never run. */
export type ScheduleState = ReadonlyMap<string, Date>;

export type PlannedAction =
  /**
   * Request a backup for `slot`, then record it. `late` is true for a slot missed while down;
   * `missed` counts the earlier slots since the recorded one that will never run (downtime or a
   * forward clock jump), at most MISSED_SLOTS_COUNTED.
   */
  | { readonly type: 'fire'; readonly schedule: PlannedSchedule; readonly slot: Date; readonly late: boolean; readonly missed: number }
  /** Record `slot` without firing: a first start's baseline, or a missed slot with catch-up off. */
  | { readonly type: 'record'; readonly schedule: PlannedSchedule; readonly slot: Date; readonly reason: 'baseline' | 'skipped' }
  /**
   * Nothing fires: the recorded slot is ahead of the clock (it stepped back, or another
   * scheduler's clock is ahead), and slots up to it already fired.
   */
  | { readonly type: 'hold'; readonly schedule: PlannedSchedule; readonly recordedSlot: Date };

export interface PlannerOptions {
  /**
   * A slot this old or younger is "due", not "missed": the loop wakes a little after a slot and
   * must still fire it even when catch-up is off. Default 60 s.
   */
  readonly dueToleranceMs?: number;
}

export const DEFAULT_DUE_TOLERANCE_MS = 60_000;
/** Counting missed slots walks the cron expression; past this many the count says "at least". */
export const MISSED_SLOTS_COUNTED = 10_000;

export const scheduleKey = (engine: string, target: string, scheduleId: string): string => `${engine}.${target}.${scheduleId}`;

/** Flattens the config's targets into plannable schedules. */
export function schedulesFromConfig(config: TidemarkConfig): PlannedSchedule[] {
  return config.targets.flatMap((target) =>
    target.schedules.map((s) => ({
      key: scheduleKey(target.engine, target.name, s.id),
      engine: target.engine,
      target: target.name,
      scheduleId: s.id,
      cron: s.cron,
      timezone: s.timezone,
      kind: s.kind,
      ...(s.fullRehash === undefined ? {} : { fullRehash: s.fullRehash }),
      catchUp: s.catchUp,
    })),
  );
}

/**
 * Decides, for every schedule, whether a slot is due. Like systemd's `Persistent=true`: when
 * slots were missed since the recorded one, only the latest of them fires, once. On a first start
 * (no recorded slot) nothing from the past fires; `now` becomes the baseline.
 */
export function planFires(schedules: readonly PlannedSchedule[], state: ScheduleState, now: Date, options: PlannerOptions = {}): PlannedAction[] {
  const tolerance = options.dueToleranceMs ?? DEFAULT_DUE_TOLERANCE_MS;
  const actions: PlannedAction[] = [];
  for (const schedule of schedules) {
    const last = state.get(schedule.key);
    if (last === undefined) {
      actions.push({ type: 'record', schedule, slot: now, reason: 'baseline' });
      continue;
    }
    if (last.getTime() - now.getTime() > tolerance) {
      actions.push({ type: 'hold', schedule, recordedSlot: last });
      continue;
    }
    const slot = latestSlotAtOrBefore(schedule, now);
    if (slot === undefined || slot.getTime() <= last.getTime()) continue;
    const late = now.getTime() - slot.getTime() > tolerance;
    if (late && !schedule.catchUp) actions.push({ type: 'record', schedule, slot, reason: 'skipped' });
    else actions.push({ type: 'fire', schedule, slot, late, missed: slotsBetween(schedule, last, slot, MISSED_SLOTS_COUNTED + 1).length - 1 });
  }
  return actions;
}

/** The earliest slot of any schedule strictly after `now`, or undefined with no schedules. */
export function nextWakeUp(schedules: readonly PlannedSchedule[], now: Date): Date | undefined {
  let earliest: Date | undefined;
  for (const schedule of schedules) {
    const slot = nextSlot(schedule, now);
    if (earliest === undefined || slot.getTime() < earliest.getTime()) earliest = slot;
  }
  return earliest;
}
