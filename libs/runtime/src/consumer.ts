// The one place where JetStream deliveries become handler calls. A handler sees a decoded,
// validated message and returns an Outcome; the runner maps it to ack, nak with a delay, or term.
//
// Malformed commands: measured on nats-server 2.9.10, `term()` on a WORK-QUEUE stream removes the
// message from the stream (the stream reports 0 messages right after, and nothing is redelivered),
// so a rejected command is terminated and needs no delete by sequence. The runtime tests assert it
// ("the command stream is empty afterwards"), so a server that behaves otherwise fails loudly.
import type { Consumer, JetStreamClient, JsMsg, MsgHdrs } from 'nats';
import {
  decodeObject, isRetryable, MAX_COMMAND_BYTES, parseCommandSubject, parseMessage, TidemarkError, toErrorInfo, type ErrorInfo, type Schema,
} from '@tidemark/contracts';
import type { CheckResult } from './health.js';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';
import { rejectCommand } from './intake.js';
import { retryDelay, sleep } from './retry.js';

export type Outcome =
  | { readonly type: 'ack' }
  | { readonly type: 'nak'; readonly delayMs: number }
  | { readonly type: 'term'; readonly reason: string }
  /** A command that can never succeed as sent (an unknown target): answered with command.rejected, then terminated. */
  | { readonly type: 'reject'; readonly error: ErrorInfo };
export const ack = (): Outcome => ({ type: 'ack' });
export const nakWithDelay = (delayMs: number): Outcome => ({ type: 'nak', delayMs: Math.max(0, Math.round(delayMs)) });
export const term = (reason: string): Outcome => ({ type: 'term', reason });
/** The sender's mistake, not a failure of the work: the runner publishes command.rejected (a warning, never a page) and terminates. */
export const reject = (error: unknown): Outcome => ({ type: 'reject', error: toErrorInfo(error) });

export interface HandlerContext {
  readonly subject: string;
  /** 1 on first delivery. */
  readonly attempt: number;
  readonly maxDeliver: number;
  /** Stream sequence: stable across redeliveries, used to derive default request ids. */
  readonly streamSequence: number;
  /** When the message was stored in the stream (stable across redeliveries). */
  readonly storedAt: Date;
  readonly headers: MsgHdrs | undefined;
  /** Extends the ack deadline; the runner also calls it on a timer while the handler runs. */
  working(): void;
  /** Aborted on shutdown: long jobs should stop and return a nak so another instance takes over. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
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
  /** How often working() is sent while a handler runs (default: a third of ack wait). */
  readonly heartbeatMs?: number;
  /** Backoff for a handler that throws a retryable error: base * 2^(attempt-1), capped (defaults 1 s and 60 s). */
  readonly retryBaseDelayMs?: number;
  readonly retryMaxDelayMs?: number;
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
 * each decoded, validated message. A handler that throws a retryable TidemarkError is nak'ed with
 * backoff; a non-retryable one (or a thrown unknown error on the last delivery) is terminated.
 */
export function runConsumer<T>(options: ConsumerOptions<T>): RunningConsumer {
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const retryBaseDelayMs = options.retryBaseDelayMs ?? 1000;
  const retryMaxDelayMs = options.retryMaxDelayMs ?? 60_000;
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
      msg.nak(retryDelay(msg.info.deliveryCount, retryBaseDelayMs, retryMaxDelayMs));
      return;
    }
    msg.term();
  };

  const settle = async (entry: InFlight | undefined, msg: JsMsg, outcome: Outcome): Promise<void> => {
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

  const outcomeForError = (error: unknown, attempt: number, aborted: boolean): Outcome => {
    const info = toErrorInfo(error);
    if (aborted) return nakWithDelay(0);
    const lastDelivery = maxDeliver > 0 && attempt >= maxDeliver;
    const retry = error instanceof TidemarkError ? isRetryable(error) : true;
    if (retry && !lastDelivery) {
      const delayMs = retryDelay(attempt, retryBaseDelayMs, retryMaxDelayMs);
      log.warn({ attempt, code: info.code, reason: info.message, retryInMs: delayMs }, 'handler failed; will retry');
      return nakWithDelay(delayMs);
    }
    log.error({ attempt, maxDeliver, code: info.code, reason: info.message }, retry ? 'handler failed on its last delivery' : 'handler failed with a permanent error');
    return term(`${info.code}: ${info.message}`);
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
    const working = () => {
      if (!entry.abandoned) entry.latest.working();
    };
    const heartbeat = setInterval(working, Math.max(100, options.heartbeatMs ?? Math.floor(ackWaitMs / 3)));
    void (async () => {
      const attempt = msg.info.deliveryCount;
      try {
        const message = await admit(msg);
        if (message === undefined) return;
        const context: HandlerContext = {
          subject: msg.subject,
          attempt,
          maxDeliver,
          streamSequence: seq,
          storedAt: new Date(Math.floor(msg.info.timestampNanos / 1e6)),
          headers: msg.headers,
          working,
          signal: controller.signal,
          logger: log.child({ subject: msg.subject, seq, attempt }),
        };
        let outcome: Outcome;
        try {
          outcome = await options.handler(message, context);
        } catch (error) {
          outcome = outcomeForError(error, attempt, controller.signal.aborted);
        }
        await settle(entry, msg, outcome);
      } catch (error) {
        log.error({ seq, err: error }, 'unexpected failure while settling a message; it will be redelivered after ack wait');
      } finally {
        clearInterval(heartbeat);
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
