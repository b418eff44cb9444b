// One pass of the scheduler: read the recorded slots, plan, fire, record. Each schedule is
// handled on its own, so one failing publish does not hold back the others; a schedule whose
// command could not be sent keeps its old slot and is planned again on the next pass.
import type { Logger } from '@tidemark/runtime';
import { planFires, type PlannedSchedule, type PlannerOptions } from './planner.js';
import type { ScheduleStateStore } from './state-store.js';
import { missedCount, requestScheduledBackup, type CommandSender } from '../handlers/request-scheduled-backup.js';

export interface TickDeps {
  readonly store: ScheduleStateStore;
  readonly sender: CommandSender;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  readonly planner?: PlannerOptions;
}

export interface TickReport {
  readonly fired: { key: string; slot: Date; duplicate: boolean }[];
  readonly recorded: { key: string; slot: Date; reason: 'baseline' | 'skipped' }[];
  /** Schedules whose recorded slot is ahead of the clock: nothing fires until the clock passes it. */
  readonly held: { key: string; recordedSlot: Date }[];
  readonly failed: { key: string; error: unknown }[];
}

export async function runTick(schedules: readonly PlannedSchedule[], deps: TickDeps, now: Date): Promise<TickReport> {
  const { store, sender, logger } = deps;
  const report: TickReport = { fired: [], recorded: [], held: [], failed: [] };
  const recorded = await Promise.all(schedules.map(async (s) => [s.key, await store.read(s.key)] as const));
  const revisions = new Map(recorded.map(([key, entry]) => [key, entry?.revision ?? 0]));
  const state = new Map(recorded.flatMap(([key, entry]) => (entry ? [[key, entry.slot] as const] : [])));

  for (const action of planFires(schedules, state, now, deps.planner)) {
    if (action.type === 'hold') {
      report.held.push({ key: action.schedule.key, recordedSlot: action.recordedSlot });
      continue;
    }
    const { schedule, slot } = action;
    const revision = revisions.get(schedule.key) ?? 0;
    try {
      if (action.type === 'fire') {
        const { duplicate, requestId } = await requestScheduledBackup(schedule, slot, action, sender);
        report.fired.push({ key: schedule.key, slot, duplicate });
        const log = { schedule: schedule.key, slot: slot.toISOString(), requestId, late: action.late, duplicate };
        if (duplicate) logger.debug(log, 'slot already requested (another scheduler or an earlier run)');
        else if (action.missed > 0) {
          // One backup stands in for many: whoever reads the history should know the others never ran.
          const since = state.get(schedule.key)?.toISOString();
          logger.warn({ ...log, missed: action.missed, since }, `${missedCount(action.missed)} slot${action.missed === 1 ? '' : 's'} did not run since ${since} (the scheduler was down or its clock jumped): requested the latest one, once`);
        } else logger.info(log, action.late ? 'requested a backup for a slot missed while down' : 'requested a scheduled backup');
      } else {
        report.recorded.push({ key: schedule.key, slot, reason: action.reason });
        const log = { schedule: schedule.key, slot: slot.toISOString() };
        if (action.reason === 'baseline') logger.info(log, 'first start of this schedule: recording now as its baseline, no past slot fires');
        else logger.warn(log, 'slot missed while down and catchUp is off: skipping it');
      }
      // The command is stored before the slot is recorded: a crash in between re-fires the same
      // slot on restart, and the stream drops the repeat.
      const won = await store.record(schedule.key, slot, revision);
      if (!won) logger.debug({ schedule: schedule.key }, 'another scheduler recorded this schedule first');
    } catch (error) {
      report.failed.push({ key: schedule.key, error });
      logger.error({ schedule: schedule.key, slot: slot.toISOString(), err: error }, 'scheduling failed; it will be retried on the next pass');
    }
  }
  return report;
}
