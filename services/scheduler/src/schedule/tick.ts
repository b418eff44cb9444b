// One pass of the scheduler: read the recorded slots, plan, fire, record. Each schedule is
// handled on its own, so one failing publish does not hold back the others; a schedule whose
// command could not be sent keeps its old slot and is planned again on the next pass.
import type { Logger } from '@tidemark/runtime';
import { planFires, type PlannedSchedule, type PlannerOptions } from './planner.js';
import type { ScheduleStateStore } from './state-store.js';
import { requestScheduledBackup, type CommandSender } from '../handlers/request-scheduled-backup.js';

export interface TickDeps {
  readonly store: ScheduleStateStore;
  readonly sender: CommandSender;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  readonly planner?: PlannerOptions;
}

export interface TickReport {
  readonly fired: { key: string; slot: Date; duplicate: boolean }[];
  readonly recorded: { key: string; slot: Date; reason: 'baseline' | 'skipped' }[];
  readonly failed: { key: string; error: unknown }[];
}

export async function runTick(schedules: readonly PlannedSchedule[], deps: TickDeps, now: Date): Promise<TickReport> {
  const { store, sender, logger } = deps;
  const report: TickReport = { fired: [], recorded: [], failed: [] };
  const recorded = await Promise.all(schedules.map(async (s) => [s.key, await store.read(s.key)] as const));
  const revisions = new Map(recorded.map(([key, entry]) => [key, entry?.revision ?? 0]));
  const state = new Map(recorded.flatMap(([key, entry]) => (entry ? [[key, entry.slot] as const] : [])));

  for (const action of planFires(schedules, state, now, deps.planner)) {
    const { schedule, slot } = action;
    const revision = revisions.get(schedule.key) ?? 0;
    try {
      if (action.type === 'fire') {
        const { duplicate, requestId } = await requestScheduledBackup(schedule, slot, action.late, sender);
        report.fired.push({ key: schedule.key, slot, duplicate });
        const log = { schedule: schedule.key, slot: slot.toISOString(), requestId, late: action.late, duplicate };
        if (duplicate) logger.debug(log, 'slot already requested (another scheduler or an earlier run)');
        else logger.info(log, action.late ? 'requested a backup for a slot missed while down' : 'requested a scheduled backup');
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
