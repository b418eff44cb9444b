// Handlers for the failure events: decode is done by the consumer runner; here the event is
// turned into an alert and raised. Storing the alert failing (NATS away) fails the event, and the
// consumer runner's policy brings it back; everything else acks.
import type { Alert, BackupCompleted, BackupFailed, CommandRejected, RestoreFailed, VerifyFailed, WalProblem } from '@tidemark/contracts';
import { failed, type HandlerContext, type Outcome } from '@tidemark/runtime';
import { backupFailedAlert, backupIncompleteAlert, commandRejectedAlert, restoreFailedAlert, verifyFailedAlert, walProblemAlert } from '../alerts/rules.js';
import type { AlertDispatcher } from '../alerts/dispatcher.js';

export interface AlertHandlerDeps {
  readonly dispatcher: Pick<AlertDispatcher, 'raise'>;
  readonly clock: () => Date;
}

type Ctx = Pick<HandlerContext, 'attempt' | 'logger'>;

const ACK: Outcome = { type: 'ack' };

async function raise(alert: Alert | undefined, deps: AlertHandlerDeps, ctx: Ctx): Promise<Outcome> {
  if (!alert) return ACK;
  try {
    await deps.dispatcher.raise(alert, deps.clock());
    return ACK;
  } catch (error) {
    ctx.logger.warn({ dedupeKey: alert.dedupeKey, err: error, attempt: ctx.attempt }, 'storing the alert failed');
    return failed(error);
  }
}

export const handleVerifyFailed = (event: VerifyFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(verifyFailedAlert(event), deps, ctx);
/** Non-final failures are retries in progress: acked without an alert. */
export const handleBackupFailed = (event: BackupFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(backupFailedAlert(event), deps, ctx);
/** A completed backup without problems raises nothing. */
export const handleBackupIncomplete = (event: BackupCompleted, deps: AlertHandlerDeps, ctx: Ctx) => raise(backupIncompleteAlert(event), deps, ctx);
export const handleRestoreFailed = (event: RestoreFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(restoreFailedAlert(event), deps, ctx);
export const handleCommandRejected = (event: CommandRejected, deps: AlertHandlerDeps, ctx: Ctx) => raise(commandRejectedAlert(event), deps, ctx);
/** wal.problem.pg.<target> (TIDEMARK_WAL stream): gaps, timeline switches, slot growth, lag. */
export const handleWalProblem = (event: WalProblem, deps: AlertHandlerDeps, ctx: Ctx) => raise(walProblemAlert(event), deps, ctx);
