// verify.passed and backup.completed feed the missed-backup watchdog's "last success" per target.
import type { BackupCompleted, VerifyPassed } from '@tidemark/contracts';
import type { Outcome } from '@tidemark/runtime';
import type { MissedBackupWatchdog } from '../watchdog/missed-backup-watchdog.js';

const ACK: Outcome = { type: 'ack' };

export async function handleVerifyPassed(event: VerifyPassed, watchdog: Pick<MissedBackupWatchdog, 'recordSuccess'>): Promise<Outcome> {
  watchdog.recordSuccess(event.engine, event.target, 'verified', new Date(event.occurredAt));
  return ACK;
}

export async function handleBackupCompleted(event: BackupCompleted, watchdog: Pick<MissedBackupWatchdog, 'recordSuccess'>): Promise<Outcome> {
  watchdog.recordSuccess(event.engine, event.target, 'completed', new Date(event.occurredAt));
  return ACK;
}
