// The one place where JetStream deliveries become handler calls. A handler sees a decoded,
// validated message and returns an Outcome; the runner maps it to ack, nak with a delay, or term.
//
// Malformed commands: measured on nats-server 2.9.10, `term()` on a WORK-QUEUE stream removes the
// message from the stream (the stream reports 0 messages right after, and nothing is redelivered),
// so a rejected command is terminated and needs no delete by sequence. The runtime tests assert it
// ("the command stream is empty afterwards"), so a server that behaves otherwise fails loudly.
import type { Consumer, JetStreamClient, JsMsg, MsgHdrs } from 'nats';
import {
  decodeObject, MAX_COMMAND_BYTES, parseCommandSubject, parseMessage, TidemarkError, toErrorInfo, type ErrorInfo, type Schema,
} from '@tidemark/contracts';
import type { CheckResult } from './health.js';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';
import { rejectCommand } from './intake.js';
import { retryDelay, sleep } from './retry.js';
import { consumerPolicyOf, decideFailure, isLastAttempt, retriesMayHelp, type ConsumerPolicy, type FailureDecision } from './consumer-policy.js';

/** What a handler returns; the runner alone turns it into ack, nak with the policy's delay, or term. */
export type Outcome =
  | { readonly type: 'ack' }
  /** The work failed: the runner decides final or retry (consumer-policy.ts) and then calls `report`, so its event is worded with that decision. */
  | { readonly type: 'failed'; readonly error: unknown; readonly report?: FailureReport | undefined }
  /** A command that can never succeed as sent (an unknown target): answered with command.rejected, then terminated. */
  | { readonly type: 'reject'; readonly error: ErrorInfo };

/** Publishes what a failure means for the sender (backup.failed, verify.failed…) once the runner has decided. */
export type FailureReport = (decision: FailureDecision, error: unknown) => Promise<void>;

/** How the runner settles a message: the only place ack, nak and term are chosen. */
export type Settlement =
  | { readonly type: 'ack' }
  | { readonly type: 'nak'; readonly delayMs: number }
  | { readonly type: 'term'; readonly reason: string }
  | { readonly type: 'reject'; readonly error: ErrorInfo };

export const ack = (): Outcome => ({ type: 'ack' });
export const failed = (error: unknown, report?: FailureReport): Outcome => ({ type: 'failed', error, report });
/** The sender's mistake, not a failure of the work: the runner publishes command.rejected (a warning, never a page) and terminates. */
export const reject = (error: unknown): Outcome => ({ type: 'reject', error: toErrorInfo(error) });

export interface HandlerContext {
  readonly subject: string;
  /** 1 on first delivery. */
  readonly attempt: number;
  readonly maxDeliver: number;
  /** Whether a failure of this delivery is final whatever its error (the policy's isLastAttempt). */
  readonly isLastAttempt: boolean;
  /** Stream sequence: stable across redeliveries, used to derive default request ids. */
  readonly streamSequence: number;
  /** When the message was stored in the stream (stable across redeliveries). */
  readonly storedAt: Date;
  readonly headers: MsgHdrs | undefined;
  /**
   * The job moved forward (bytes moved, WAL replayed, rows checked). Only progress keeps the
   * message's ack deadline extended; a job silent for its stall window is aborted with TIMEOUT.
   */
  progress(what?: string): void;
  /**
   * Aborted on shutdown (reason SHUTTING_DOWN: the message is handed back at once) or when the job
   * stalled (reason TIMEOUT: retried by the policy). Jobs stop their tools and clean up on it.
   */
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

/**
 * Settles an outcome the way the runner does: `failed` becomes nak with the policy's delay or
 * term, after its report ran with that decision. A job aborted by shutdown is handed back
 * without a report; one aborted because it stalled fails with the TIMEOUT that stopped it, not
 * with the errors the abort caused.
 */
export async function settlementOf(
  outcome: Outcome,
  delivery: { readonly attempt: number; readonly maxDeliver: number; readonly signal: AbortSignal },
  policy: Pick<ConsumerPolicy, 'backoff'>,
  log: Logger,
): Promise<Settlement> {
  if (outcome.type !== 'failed') return outcome;
  const abortReason: unknown = delivery.signal.aborted ? delivery.signal.reason : undefined;
  if (abortReason instanceof TidemarkError && abortReason.code === 'SHUTTING_DOWN') return { type: 'nak', delayMs: 0 };
  const error = abortReason instanceof TidemarkError && abortReason.code === 'TIMEOUT' ? abortReason : outcome.error;
  const decision = decideFailure(error, delivery.attempt, delivery.maxDeliver, policy);
  const info = toErrorInfo(error);
  try {
    await outcome.report?.(decision, error);
  } catch (reportError) {
    // The sender must learn the outcome: an unpublished report is tried again with the message.
    log.error({ attempt: delivery.attempt, err: reportError }, 'could not report the failure; the message will be redelivered');
    return { type: 'nak', delayMs: decision.final ? policy.backoff.initialMs : decision.retryInMs };
  }
  if (!decision.final) {
    log.warn({ attempt: delivery.attempt, code: info.code, reason: info.message, retryInMs: decision.retryInMs }, 'handler failed; will retry');
    return { type: 'nak', delayMs: decision.retryInMs };
  }
  log.error({ attempt: delivery.attempt, maxDeliver: delivery.maxDeliver, code: info.code, reason: info.message }, retriesMayHelp(error) ? 'handler failed on its last delivery' : 'handler failed with a permanent error');
  return { type: 'term', reason: `${info.code}: ${info.message}` };
}

export interface ConsumerOptions<T> {
  readonly js: JetStreamClient;
  readonly stream: string;
  readonly durable: string;
  readonly schema: Schema<T>;
  readonly handler: (message: T, context: HandlerContext) => Promise<Outcome>;
  readonly logger: Logger;
  /**
   * 'command': an undecodable/invalid/oversized message is answered with command.rejected
   * (published through `publisher`) and terminated. 'event': it is logged and terminated.
   */
  readonly kind: 'command' | 'event';
  readonly publisher: EventPublisher;
  /** Parallel messages (default 1). */
  readonly concurrency?: number;
  /** Backoff and stall windows (default: consumerPolicyOf() with the default settings). */
  readonly policy?: ConsumerPolicy;
  /** How often the runner looks for progress and stalls (default: a third of the smaller of ack wait and stall window). */
  readonly watchMs?: number;
  /** How long one pull waits for messages before asking again (default 5 s). */
  readonly fetchExpiresMs?: number;
}

export interface RunningConsumer {
  readonly durable: string;
  /** Ready once bound to its durable consumer; not ready again while pulls fail or after stop. */
  readiness(): CheckResult;
  /** Stops fetching, aborts handlers' signals, waits for them to settle (bounded), and returns. */
  stop(graceMs?: number): Promise<void>;
  /** Number of handlers running now. */
  readonly inFlight: number;
}

/** One message being handled. `latest` is the newest delivery of it, which acks and heartbeats go to. */
interface InFlight {
  latest: JsMsg;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  abandoned: boolean;
}

const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_GRACE_MS = 10_000;


/**
 * Pulls from a durable consumer (created beforehand with ensureConsumer) and runs `handler` for
 * each decoded, validated message. A failure (returned with `failed` or thrown) is settled by
 * settlementOf: retryable with attempts left → nak with the policy's delay, else term.
 */
export function runConsumer<T>(options: ConsumerOptions<T>): RunningConsumer {
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const policy = options.policy ?? consumerPolicyOf();
  const fetchExpiresMs = Math.max(1000, options.fetchExpiresMs ?? 5000);
  const log = options.logger.child({ stream: options.stream, consumer: options.durable });
  const inFlight = new Map<number, InFlight>();
  const stopController = new AbortController();
  let slotFreed: (() => void) | undefined;
  let currentBatch: { stop(): void } | undefined;
  let ackWaitMs = DEFAULT_ACK_WAIT_MS;
  let maxDeliver = -1;
  let bound = false;
  let bindError: string | undefined;

  const notifySlot = () => {
    const wake = slotFreed;
    slotFreed = undefined;
    wake?.();
  };

  const waitForSlot = () =>
    inFlight.size < concurrency || stopController.signal.aborted
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          slotFreed = resolve;
        });

  /**
   * Answers a command that cannot be accepted with command.rejected and terminates it. Without
   * the rejection event the sender would never learn why, so when publishing it fails the
   * command is kept and tried again.
   */
  const rejectAndTerm = async (msg: JsMsg, info: ErrorInfo): Promise<void> => {
    try {
      await rejectCommand(options.publisher, msg.subject, msg.data, info, msg.seq);
    } catch (publishError) {
      log.error({ seq: msg.seq, err: publishError }, 'could not publish command.rejected; will retry');
      msg.nak(retryDelay(msg.info.deliveryCount, policy.backoff.initialMs, policy.backoff.maxMs));
      return;
    }
    msg.term();
  };

  const settle = async (entry: InFlight | undefined, msg: JsMsg, outcome: Settlement): Promise<void> => {
    if (entry?.abandoned) {
      log.warn({ seq: msg.seq, outcome: outcome.type }, 'handler finished after shutdown gave up on it; its outcome is dropped');
      return;
    }
    const target = entry?.latest ?? msg;
    switch (outcome.type) {
      case 'ack':
        target.ack();
        break;
      case 'nak':
        target.nak(outcome.delayMs);
        break;
      case 'term':
        log.warn({ subject: target.subject, seq: target.seq, reason: outcome.reason }, 'message terminated; it will not be redelivered');
        target.term();
        break;
      case 'reject':
        if (options.kind === 'event') {
          log.error({ subject: target.subject, seq: target.seq, code: outcome.error.code, reason: outcome.error.message }, 'dropping an event its handler refused');
          target.term();
          break;
        }
        log.warn({ subject: target.subject, seq: target.seq, code: outcome.error.code, reason: outcome.error.message }, 'rejecting a command that cannot succeed as sent');
        await rejectAndTerm(target, outcome.error);
        break;
    }
  };

  /** Decodes and validates; on failure answers the sender (commands) and returns undefined. */
  const admit = async (msg: JsMsg): Promise<T | undefined> => {
    try {
      if (options.kind === 'command') {
        if (msg.data.length > MAX_COMMAND_BYTES) {
          throw new TidemarkError('COMMAND_TOO_LARGE', `the command is ${msg.data.length} bytes, more than the ${MAX_COMMAND_BYTES} allowed; send only the fields the command needs`);
        }
        const parsed = parseCommandSubject(msg.subject);
        if ('error' in parsed) throw new TidemarkError('COMMAND_UNKNOWN_SUBJECT', parsed.error);
      }
      return parseMessage(options.schema, decodeObject(msg.data, msg.headers, options.kind));
    } catch (error) {
      const info = toErrorInfo(error);
      if (options.kind === 'event') {
        log.error({ subject: msg.subject, seq: msg.seq, code: info.code, reason: info.message }, 'dropping an event that cannot be read');
        msg.term();
        return undefined;
      }
      log.warn({ subject: msg.subject, seq: msg.seq, code: info.code, reason: info.message }, 'rejecting a malformed command');
      await rejectAndTerm(msg, info);
      return undefined;
    }
  };

  const handle = (msg: JsMsg) => {
    const seq = msg.seq;
    const existing = inFlight.get(seq);
    if (existing) {
      // Redelivered while still running here (ack wait passed): never run it twice; the running
      // handler's outcome goes to the newest delivery.
      existing.latest = msg;
      msg.working();
      log.warn({ seq }, 'message redelivered while its handler is still running; keeping the running one');
      return;
    }
    const controller = new AbortController();
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => {
      resolveDone = resolve;
    });
    const entry: InFlight = { latest: msg, controller, done, abandoned: false };
    inFlight.set(seq, entry);
    const attempt = msg.info.deliveryCount;
    const stallMs = Math.max(1, policy.stallMs(msg.subject));
    let lastProgressAt = Date.now();
    let lastProgress: string | undefined;
    const progress = (what?: string) => {
      lastProgressAt = Date.now();
      if (what !== undefined) lastProgress = what;
    };
    // The deadline is extended only while the job's last progress lies within its stall window,
    // so a hung tool cannot keep its message forever, and silence for the whole window aborts it
    // with TIMEOUT. Within the window a quiet step (an index build, a snapshot being created) keeps
    // its message even when the window is longer than the ack wait: no redelivery while it runs.
    const watch = setInterval(() => {
      if (entry.abandoned || controller.signal.aborted) return;
      const silentMs = Date.now() - lastProgressAt;
      if (silentMs < stallMs) entry.latest.working();
      if (silentMs >= stallMs) {
        const seconds = Math.round(silentMs / 1000);
        const last = lastProgress !== undefined ? ` (last progress: ${lastProgress})` : '';
        log.warn({ seq, attempt, silentMs, stallMs, lastProgress }, 'job made no progress within its stall window; aborting it');
        controller.abort(new TidemarkError('TIMEOUT', `${msg.subject}: the job made no progress for ${seconds} s (stall window ${Math.round(stallMs / 1000)} s)${last}; it was stopped`));
      }
    }, Math.max(50, options.watchMs ?? Math.floor(Math.min(ackWaitMs, stallMs) / 3)));
    void (async () => {
      try {
        const message = await admit(msg);
        if (message === undefined) return;
        const context: HandlerContext = {
          subject: msg.subject,
          attempt,
          maxDeliver,
          isLastAttempt: isLastAttempt(attempt, maxDeliver),
          streamSequence: seq,
          storedAt: new Date(Math.floor(msg.info.timestampNanos / 1e6)),
          headers: msg.headers,
          progress,
          signal: controller.signal,
          logger: log.child({ subject: msg.subject, seq, attempt }),
        };
        let outcome: Outcome;
        try {
          outcome = await options.handler(message, context);
        } catch (error) {
          outcome = failed(error);
        }
        await settle(entry, msg, await settlementOf(outcome, { attempt, maxDeliver, signal: controller.signal }, policy, context.logger));
      } catch (error) {
        log.error({ seq, err: error }, 'unexpected failure while settling a message; it will be redelivered after ack wait');
      } finally {
        clearInterval(watch);
        inFlight.delete(seq);
        resolveDone();
        notifySlot();
      }
    })();
  };

  const loop = async () => {
    let consumer: Consumer | undefined;
    let failures = 0;
    while (!stopController.signal.aborted) {
      try {
        await waitForSlot();
        if (stopController.signal.aborted) break;
        if (!consumer) {
          consumer = await options.js.consumers.get(options.stream, options.durable);
          const info = await consumer.info(true);
          ackWaitMs = Math.max(1, Math.floor((info.config.ack_wait ?? DEFAULT_ACK_WAIT_MS * 1e6) / 1e6));
          maxDeliver = info.config.max_deliver ?? -1;
          bound = true;
          bindError = undefined;
        }
        const batch = await consumer.fetch({ max_messages: concurrency - inFlight.size, expires: fetchExpiresMs });
        currentBatch = batch;
        if (stopController.signal.aborted) batch.stop();
        for await (const msg of batch) {
          if (stopController.signal.aborted) break; // left unacked: redelivered after ack wait
          handle(msg);
        }
        currentBatch = undefined;
        failures = 0;
      } catch (error) {
        currentBatch = undefined;
        if (stopController.signal.aborted) break;
        failures++;
        consumer = undefined;
        bound = false;
        bindError = (error as Error)?.message ?? String(error);
        const delayMs = retryDelay(failures, 250, 5000);
        log.warn({ err: { message: (error as Error)?.message ?? String(error) }, retryInMs: delayMs }, 'pulling messages failed; retrying');
        await sleep(delayMs, stopController.signal).catch(() => undefined);
      }
    }
  };
  const loopDone = loop();

  return {
    durable: options.durable,
    readiness() {
      const where = { stream: options.stream, consumer: options.durable };
      if (stopController.signal.aborted) return { ok: false, detail: { ...where, state: 'stopped' } };
      if (!bound) return { ok: false, detail: { ...where, state: 'binding', ...(bindError !== undefined ? { lastError: bindError } : {}) } };
      return { ok: true, detail: { ...where, state: 'bound' } };
    },
    get inFlight() {
      return inFlight.size;
    },
    async stop(graceMs = DEFAULT_GRACE_MS) {
      if (!stopController.signal.aborted) {
        stopController.abort();
        currentBatch?.stop();
        notifySlot();
      }
      for (const entry of inFlight.values()) entry.controller.abort(new TidemarkError('SHUTTING_DOWN', 'the service is shutting down'));
      const settled = Promise.all([...inFlight.values()].map((e) => e.done)).then(() => true);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      });
      const allSettled = await Promise.race([settled, timedOut]);
      clearTimeout(timer);
      if (!allSettled) {
        for (const [seq, entry] of inFlight) {
          log.warn({ seq }, 'handler did not stop within the grace period; handing the message back');
          entry.abandoned = true;
          entry.latest.nak(0);
        }
      }
      await Promise.race([loopDone, sleep(1000)]);
    },
  };
}
