import type { JetStreamClient, MsgHdrs } from 'nats';
import type { Schema } from '@tidemark/contracts';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';

export type Outcome =
  | { readonly type: 'ack' }
  | { readonly type: 'nak'; readonly delayMs: number }
  | { readonly type: 'term'; readonly reason: string };
export declare const ack: () => Outcome;
export declare const nakWithDelay: (delayMs: number) => Outcome;
export declare const term: (reason: string) => Outcome;

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
}

export interface RunningConsumer {
  /** Stops fetching, aborts handlers' signals, waits for them to settle (bounded), and returns. */
  stop(graceMs?: number): Promise<void>;
  /** Number of handlers running now. */
  readonly inFlight: number;
}

/**
 * Pulls from a durable consumer (created beforehand with ensureConsumer) and runs `handler` for
 * each decoded, validated message. A handler that throws a retryable TidemarkError is nak'ed with
 * backoff; a non-retryable one (or a thrown unknown error on the last delivery) is terminated.
 */
export declare function runConsumer<T>(options: ConsumerOptions<T>): RunningConsumer;
