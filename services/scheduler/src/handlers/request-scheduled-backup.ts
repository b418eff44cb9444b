// Turns a due slot into a RequestBackup command. The command id is derived from the slot alone,
// so any number of schedulers (or a restarted one) firing the same slot produce one stored
// command: the command stream drops repeats of a Nats-Msg-Id inside its duplicate window.
import { messageIds, subjects, type Engine, type RequestBackup } from '@tidemark/contracts';
import type { PlannedSchedule } from '../schedule/planner.js';

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

export function scheduledCommand(schedule: PlannedSchedule, slot: Date, late: boolean): ScheduledCommand {
  const { engine, target, scheduleId } = schedule;
  return {
    subject: subjects.backupRequested(engine, target),
    msgId: messageIds.scheduledBackup(engine, target, scheduleId, slot),
    command: {
      schemaVersion: 1,
      requestId: scheduledRequestId(engine, target, scheduleId, slot),
      kind: schedule.kind,
      reason: late ? `schedule ${scheduleId}: slot missed while the scheduler was down` : `schedule ${scheduleId}`,
      requestedBy: 'scheduler',
      scheduleId,
      scheduledFor: slot.toISOString(),
    },
  };
}

export async function requestScheduledBackup(schedule: PlannedSchedule, slot: Date, late: boolean, sender: CommandSender): Promise<{ duplicate: boolean; requestId: string }> {
  const { subject, msgId, command } = scheduledCommand(schedule, slot, late);
  const { duplicate } = await sender.send(subject, command, msgId);
  return { duplicate, requestId: command.requestId as string };
}
