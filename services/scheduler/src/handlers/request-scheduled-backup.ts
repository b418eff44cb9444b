// Turns a due slot into a RequestBackup command. The command id is derived from the slot alone,
// so any number of schedulers (or a restarted one) firing the same slot produce one stored
// command: the command stream drops repeats of a Nats-Msg-Id inside its duplicate window.
import { messageIds, subjects, type Engine, type RequestBackup } from '@tidemark/contracts';
import { MISSED_SLOTS_COUNTED, type PlannedSchedule } from '../schedule/planner.js';

export interface ScheduledCommand {
  readonly subject: string;
  readonly msgId: string;
  readonly command: RequestBackup;
}

/** Sends a command through JetStream; resolves once stored (`duplicate` when already there). */
export interface CommandSender {
  send(subject: string, command: RequestBackup, msgId: string): Promise<{ duplicate: boolean }>;
}

/** A request id safe for storage keys and file names: `sched-<engine>-<target>-<schedule>-<yyyymmddThhmmssZ>`. */
export const scheduledRequestId = (engine: Engine, target: string, scheduleId: string, slot: Date): string =>
  `sched-${engine}-${target}-${scheduleId}-${slot.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '')}`;

/** How a slot came due: `late` past its due tolerance, after `missed` earlier slots that never ran. */
export interface SlotTiming {
  readonly late: boolean;
  readonly missed: number;
}

/** "1439", or "10000+" when the planner stopped counting. */
export const missedCount = (missed: number): string => `${missed}${missed >= MISSED_SLOTS_COUNTED ? '+' : ''}`;

function reasonFor(scheduleId: string, { late, missed }: SlotTiming): string {
  if (missed > 0) {
    const earlier = `${missedCount(missed)} earlier slot${missed === 1 ? '' : 's'} missed`;
    return `schedule ${scheduleId}: one catch-up for this slot and ${earlier} (the scheduler was down or its clock jumped)`;
  }
  return late ? `schedule ${scheduleId}: slot missed while the scheduler was down` : `schedule ${scheduleId}`;
}

export function scheduledCommand(schedule: PlannedSchedule, slot: Date, timing: SlotTiming): ScheduledCommand {
  const { engine, target, scheduleId } = schedule;
  return {
    subject: subjects.backupRequested(engine, target),
    msgId: messageIds.scheduledBackup(engine, target, scheduleId, slot),
    command: {
      schemaVersion: 1,
      requestId: scheduledRequestId(engine, target, scheduleId, slot),
      kind: schedule.kind,
      ...(schedule.fullRehash === undefined ? {} : { fullRehash: schedule.fullRehash }),
      reason: reasonFor(scheduleId, timing),
      requestedBy: 'scheduler',
      scheduleId,
      scheduledFor: slot.toISOString(),
    },
  };
}

export async function requestScheduledBackup(schedule: PlannedSchedule, slot: Date, timing: SlotTiming, sender: CommandSender): Promise<{ duplicate: boolean; requestId: string }> {
  const { subject, msgId, command } = scheduledCommand(schedule, slot, timing);
  const { duplicate } = await sender.send(subject, command, msgId);
  return { duplicate, requestId: command.requestId as string };
}
