// Assembles the alerter: durable consumers for the failure events, the WAL archive's problems
// and the success events, the dispatcher with its webhooks, and the watchdog timer.
import type { JetStreamClient, JetStreamManager } from 'nats';
import type { TidemarkConfig } from '@tidemark/config';
import {
  BackupCompleted, BackupFailed, CommandRejected, EVENTS_STREAM, RestoreFailed, VerifyFailed, VerifyPassed, WAL_STREAM, WalProblem, consumers, decode,
  filters, parseMessage, subjects, type Schema,
} from '@tidemark/contracts';
import { ensureConsumer, runConsumer, type ConsumerPolicy, type EventPublisher, type HandlerContext, type Logger, type Outcome, type RunningConsumer } from '@tidemark/runtime';
import { AlertDispatcher, type AlertChannel, type AlertStore } from './alerts/dispatcher.js';
import { createJetStreamAlertStore } from './adapters/jetstream-alert-store.js';
import { createWebhookChannel, type WebhookOptions } from './adapters/webhook-channel.js';
import { handleBackupFailed, handleBackupIncomplete, handleCommandRejected, handleRestoreFailed, handleVerifyFailed, handleWalProblem, type AlertHandlerDeps } from './handlers/alert-on-failure.js';
import { handleBackupCompleted, handleVerifyPassed } from './handlers/track-success.js';
import { MissedBackupWatchdog } from './watchdog/missed-backup-watchdog.js';
import { humanDuration } from './alerts/rules.js';
import { watchedTargets } from './watchdog/expected-window.js';

export interface AlerterContext {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  readonly publisher: EventPublisher;
  readonly ackWaitMs?: number;
  readonly maxDeliver?: number;
  /** The config's `consumers:` policy (bootstrap's consumerPolicy); the runtime's default otherwise. */
  readonly consumerPolicy?: ConsumerPolicy;
}

export interface AlerterOptions {
  readonly clock?: () => Date;
  readonly webhook?: WebhookOptions;
  /** Overrides for tests. */
  readonly store?: AlertStore;
  readonly channels?: readonly AlertChannel[];
}

export interface RunningAlerter {
  readonly dispatcher: AlertDispatcher;
  readonly watchdog: MissedBackupWatchdog;
  /** Its consumers, for readiness. */
  readonly consumers: readonly RunningConsumer[];
  /** One watchdog pass now (the timer runs it every alerts.watchdogIntervalSeconds). */
  checkWatchdog(): Promise<void>;
  stop(): Promise<void>;
}

/** Consumers that raise alerts start at new events: a first deployment does not page for last month. */
const FAILURE_CONSUMERS = [
  { durable: consumers.alerterVerifyFailed, filter: filters.verifyFailed },
  { durable: consumers.alerterBackupFailed, filter: filters.backupFailed },
  { durable: consumers.alerterCommandRejected, filter: filters.commandRejected },
  { durable: consumers.alerterRestoreFailed, filter: filters.restoreFailed },
  { durable: consumers.alerterBackupIncomplete, filter: filters.backupCompleted },
] as const;
/** Success consumers replay the whole history when first created: they only rebuild state. */
const SUCCESS_CONSUMERS = [
  { durable: consumers.alerterVerifyPassed, filter: filters.verifyPassed },
  { durable: consumers.alerterBackupCompleted, filter: filters.backupCompleted },
] as const;

export async function startAlerter(config: TidemarkConfig, ctx: AlerterContext, options: AlerterOptions = {}): Promise<RunningAlerter> {
  const { js, jsm, logger, publisher } = ctx;
  const clock = options.clock ?? (() => new Date());
  const channels = options.channels ?? config.alerts.webhooks.map((w) => createWebhookChannel(w, logger, options.webhook));
  const dispatcher = new AlertDispatcher({
    store: options.store ?? createJetStreamAlertStore(js),
    channels,
    logger,
    dedupeWindowMs: config.alerts.dedupeWindowMinutes * 60_000,
  });
  const watchdog = new MissedBackupWatchdog(watchedTargets(config, clock()), clock());
  await seedLastSuccesses(jsm, watchdog, logger);

  const consumerOptions = { ...(ctx.ackWaitMs ? { ackWaitMs: ctx.ackWaitMs } : {}), ...(ctx.maxDeliver ? { maxDeliver: ctx.maxDeliver } : {}) };
  for (const c of FAILURE_CONSUMERS) await ensureConsumer(jsm, EVENTS_STREAM.name, c.durable, c.filter, { ...consumerOptions, deliverNew: true });
  for (const c of SUCCESS_CONSUMERS) await ensureConsumer(jsm, EVENTS_STREAM.name, c.durable, c.filter, { ...consumerOptions, deliverNew: false });
  // WAL problems live on their own stream; like the failures, only new ones page.
  await ensureConsumer(jsm, WAL_STREAM.name, consumers.alerterWalProblem, filters.walProblem, { ...consumerOptions, deliverNew: true });

  const deps: AlertHandlerDeps = { dispatcher, clock };
  const run = <T>(durable: string, schema: Schema<T>, handler: (event: T, context: HandlerContext) => Promise<Outcome>, stream = EVENTS_STREAM.name): RunningConsumer =>
    runConsumer({ js, stream, durable, schema, handler, logger, kind: 'event', publisher, ...(ctx.consumerPolicy ? { policy: ctx.consumerPolicy } : {}) });
  const running = [
    run(consumers.alerterVerifyFailed, VerifyFailed, (e, c) => handleVerifyFailed(e, deps, c)),
    run(consumers.alerterBackupFailed, BackupFailed, (e, c) => handleBackupFailed(e, deps, c)),
    run(consumers.alerterCommandRejected, CommandRejected, (e, c) => handleCommandRejected(e, deps, c)),
    run(consumers.alerterRestoreFailed, RestoreFailed, (e, c) => handleRestoreFailed(e, deps, c)),
    run(consumers.alerterBackupIncomplete, BackupCompleted, (e, c) => handleBackupIncomplete(e, deps, c)),
    run(consumers.alerterWalProblem, WalProblem, (e, c) => handleWalProblem(e, deps, c), WAL_STREAM.name),
    run(consumers.alerterVerifyPassed, VerifyPassed, (e) => handleVerifyPassed(e, watchdog)),
    run(consumers.alerterBackupCompleted, BackupCompleted, (e) => handleBackupCompleted(e, watchdog)),
  ];

  let checking: Promise<void> = Promise.resolve();
  const checkWatchdog = async (): Promise<void> => {
    for (const alert of watchdog.check(clock())) {
      try {
        await dispatcher.raise(alert, clock());
      } catch (error) {
        if (alert.engine && alert.target) watchdog.reportAgain(alert.engine, alert.target);
        logger.warn({ dedupeKey: alert.dedupeKey, err: error }, 'raising a missed-backup alert failed; the next watchdog pass retries');
      }
    }
  };
  // Passes are chained so that a slow one is never overlapped by the next.
  const queueCheck = (): Promise<void> =>
    (checking = checking.then(checkWatchdog).catch((error: unknown) => logger.error({ err: error }, 'watchdog pass failed')));
  const timer = setInterval(() => void queueCheck(), config.alerts.watchdogIntervalSeconds * 1000);

  logger.info(
    { webhooks: channels.map((c) => c.name), watched: watchdog.watched.map((t) => ({ target: `${t.engine}/${t.target}`, expectedWithin: humanDuration(t.expectedWithinMs), evidence: t.evidence })) },
    'alerter started',
  );

  return {
    dispatcher,
    watchdog,
    consumers: running,
    checkWatchdog: queueCheck,
    async stop() {
      clearInterval(timer);
      await Promise.all(running.map((r) => r.stop()));
      await checking;
      for (const c of channels) (c as { breaker?: { shutdown(): void } }).breaker?.shutdown();
      logger.info('alerter stopped');
    },
  };
}

/**
 * Reads the newest success event of every watched target straight from the stream, so that a
 * restarted alerter knows the last success at once (its durable consumers resume after the
 * events they already acknowledged and would not replay them).
 */
async function seedLastSuccesses(jsm: JetStreamManager, watchdog: MissedBackupWatchdog, logger: Logger): Promise<void> {
  for (const t of watchdog.watched) {
    const [subject, schema] = t.evidence === 'verified'
      ? [subjects.verifyPassed(t.engine, t.target), VerifyPassed as Schema<{ occurredAt: string }>]
      : [subjects.backupCompleted(t.engine, t.target), BackupCompleted as Schema<{ occurredAt: string }>];
    try {
      const stored = await jsm.streams.getMessage(EVENTS_STREAM.name, { last_by_subj: subject });
      const event = parseMessage(schema, decode(stored.data, stored.header));
      watchdog.recordSuccess(t.engine, t.target, t.evidence, new Date(event.occurredAt));
    } catch (error) {
      if (isNoMessage(error)) continue;
      logger.warn({ subject, err: error }, 'could not read the last success from the stream; the watchdog counts from now');
    }
  }
}

const NO_MESSAGE_FOUND = 10037;
const isNoMessage = (error: unknown): boolean =>
  (error as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code === NO_MESSAGE_FOUND
  || /no message found/i.test((error as Error | undefined)?.message ?? '');
