// Handlers for the failure events: decode is done by the consumer runner; here the event is
// turned into an alert and raised. Storing the alert failing (NATS away) naks the event so it
// comes back; everything else acks.
import type { Alert, BackupFailed, CommandRejected, RestoreFailed, VerifyFailed, WalProblem } from '@tidemark/contracts';
import { retryDelay, type HandlerContext, type Outcome } from '@tidemark/runtime';
import { backupFailedAlert, commandRejectedAlert, restoreFailedAlert, verifyFailedAlert, walProblemAlert } from '../alerts/rules.js';
import type { AlertDispatcher } from '../alerts/dispatcher.js';

export interface AlertHandlerDeps {
  readonly dispatcher: Pick<AlertDispatcher, 'raise'>;
  readonly clock: () => Date;
}

type Ctx = Pick<HandlerContext, 'attempt' | 'logger'>;

const ACK: Outcome = { type: 'ack' };
/** Backoff for a failed alert store: 2 s, 4 s, 8 s … capped at a minute. */
const retryDelayMs = (attempt: number) => retryDelay(attempt, 2_000, 60_000);

async function raise(alert: Alert | undefined, deps: AlertHandlerDeps, ctx: Ctx): Promise<Outcome> {
  if (!alert) return ACK;
  try {
    await deps.dispatcher.raise(alert, deps.clock());
    return ACK;
  } catch (error) {
    const delayMs = retryDelayMs(ctx.attempt);
    ctx.logger.warn({ dedupeKey: alert.dedupeKey, err: error, delayMs }, 'storing the alert failed; the event will be retried');
    return { type: 'nak', delayMs };
  }
}

export const handleVerifyFailed = (event: VerifyFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(verifyFailedAlert(event), deps, ctx);
/** Non-final failures are retries in progress: acked without an alert. */
export const handleBackupFailed = (event: BackupFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(backupFailedAlert(event), deps, ctx);
export const handleRestoreFailed = (event: RestoreFailed, deps: AlertHandlerDeps, ctx: Ctx) => raise(restoreFailedAlert(event), deps, ctx);
export const handleCommandRejected = (event: CommandRejected, deps: AlertHandlerDeps, ctx: Ctx) => raise(commandRejectedAlert(event), deps, ctx);
/** wal.problem.pg.<target> (TIDEMARK_WAL stream): gaps, timeline switches, slot growth, lag. */
export const handleWalProblem = (event: WalProblem, deps: AlertHandlerDeps, ctx: Ctx) => raise(walProblemAlert(event), deps, ctx);
