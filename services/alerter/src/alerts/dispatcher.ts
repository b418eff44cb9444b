// Raising an alert: drop repeats inside the dedupe window, store it in the alert stream (msgId =
// dedupe key, so a second alerter or a restarted one does not repeat it), then notify the
// webhooks that want its severity. A webhook that keeps failing is logged and given up on: it
// must never hold back the event that caused the alert.
import type { Alert, Severity } from '@tidemark/contracts';
import type { Logger } from '@tidemark/runtime';
import { DedupeWindow } from './dedupe.js';
import { atLeast } from './rules.js';

/** Stores an alert in the alert stream; `duplicate` when the stream already had its key. */
export interface AlertStore {
  store(alert: Alert): Promise<{ duplicate: boolean }>;
}

/** One notification destination (a webhook). `deliver` retries internally and then throws. */
export interface AlertChannel {
  readonly name: string;
  readonly minSeverity: Severity;
  deliver(alert: Alert): Promise<void>;
}

export type RaiseResult = 'suppressed' | 'duplicate' | 'delivered';

export class AlertDispatcher {
  private readonly dedupe: DedupeWindow;

  constructor(
    private readonly deps: {
      readonly store: AlertStore;
      readonly channels: readonly AlertChannel[];
      readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
      readonly dedupeWindowMs: number;
    },
  ) {
    this.dedupe = new DedupeWindow(deps.dedupeWindowMs);
  }

  /** Throws only when the alert could not be stored; the caller then retries the event. */
  async raise(alert: Alert, now: Date): Promise<RaiseResult> {
    const { logger } = this.deps;
    const log = { kind: alert.kind, severity: alert.severity, dedupeKey: alert.dedupeKey };
    if (!this.dedupe.admit(alert.dedupeKey, now)) {
      logger.debug(log, 'alert suppressed: the same alert was raised inside the dedupe window');
      return 'suppressed';
    }
    let duplicate: boolean;
    try {
      ({ duplicate } = await this.deps.store.store(alert));
    } catch (error) {
      this.dedupe.forget(alert.dedupeKey);
      throw error;
    }
    if (duplicate) {
      logger.debug(log, 'alert suppressed: the alert stream already holds it (another alerter raised it)');
      return 'duplicate';
    }
    logger.info({ ...log, summary: alert.summary }, 'alert raised');
    const wanted = this.deps.channels.filter((c) => atLeast(alert.severity, c.minSeverity));
    const results = await Promise.allSettled(wanted.map((c) => c.deliver(alert)));
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        logger.error({ ...log, channel: wanted[i]?.name, err: result.reason }, 'alert could not be delivered to a webhook; giving up on it (the alert stays in the alert stream)');
      }
    });
    return 'delivered';
  }
}
