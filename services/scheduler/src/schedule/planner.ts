// The pure planner: given the schedules, the last slot recorded for each, and the time, what
// should happen now. No clocks, no NATS; the timer loop and the state store live elsewhere.
import type { ArtifactKind, Engine } from '@tidemark/contracts';
import type { TidemarkConfig } from '@tidemark/config';
import { latestSlotAtOrBefore, nextSlot } from './cron.js';

export interface PlannedSchedule {
  /** `<engine>.<target>.<scheduleId>`: the state key. */
  readonly key: string;
  readonly engine: Engine;
  readonly target: string;
  readonly scheduleId: string;
  readonly cron: string;
  readonly timezone: string;
  readonly kind: ArtifactKind;
  /** Fire a slot missed while the scheduler was down. */
  readonly catchUp: boolean;
}

/** Last slot recorded per schedule key. A missing key means the schedule has never run. */
export type ScheduleState = ReadonlyMap<string, Date>;

export type PlannedAction =
  /** Request a backup for `slot`, then record it. `late` is true for a slot missed while down. */
  | { readonly type: 'fire'; readonly schedule: PlannedSchedule; readonly slot: Date; readonly late: boolean }
  /** Record `slot` without firing: a first start's baseline, or a missed slot with catch-up off. */
  | { readonly type: 'record'; readonly schedule: PlannedSchedule; readonly slot: Date; readonly reason: 'baseline' | 'skipped' };

export interface PlannerOptions {
  /**
   * A slot this old or younger is "due", not "missed": the loop wakes a little after a slot and
   * must still fire it even when catch-up is off. Default 60 s.
   */
  readonly dueToleranceMs?: number;
}

export const DEFAULT_DUE_TOLERANCE_MS = 60_000;

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
    const slot = latestSlotAtOrBefore(schedule, now);
    if (slot === undefined || slot.getTime() <= last.getTime()) continue;
    const late = now.getTime() - slot.getTime() > tolerance;
    if (late && !schedule.catchUp) actions.push({ type: 'record', schedule, slot, reason: 'skipped' });
    else actions.push({ type: 'fire', schedule, slot, late });
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
