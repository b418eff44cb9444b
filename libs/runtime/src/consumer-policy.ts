// The one consumer policy: when a failed delivery is final, how long a retried one waits, and how
// long a job may go without progress before it is aborted. The consumer runner is its only user;
// handlers learn its decision (HandlerContext.isLastAttempt, the FailureDecision given to a
// failure report) instead of deciding again.
import { isRetryable, TidemarkError } from '@tidemark/contracts';
import { retryDelay } from './retry.js';

/** The config's `consumers:` section, as the runtime reads it (seconds, as an operator writes them). */
export interface ConsumerSettings {
  readonly maxDeliver: number;
  readonly backoff: { readonly initialSeconds: number; readonly maxSeconds: number };
  /** Per kind of job: the longest a job may run without reporting progress. */
  readonly stallSeconds: { readonly backup: number; readonly restore: number; readonly verify: number; readonly other: number };
}

export const DEFAULT_CONSUMER_SETTINGS: ConsumerSettings = {
  maxDeliver: 5,
  // 10 s doubling to 120 s: the four waits of five attempts span 150 s, so a storage or database
  // outage of a minute or two is ridden out instead of paged (the storage breaker, which stays open
  // for 10 s after its last failure, included).
  backoff: { initialSeconds: 10, maxSeconds: 120 },
  stallSeconds: { backup: 300, restore: 600, verify: 600, other: 300 },
};

export interface ConsumerPolicy {
  /** Redelivery delay after a retryable failure: initialMs doubling per attempt, capped at maxMs. */
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  /** The stall window of a message on `subject`. */
  stallMs(subject: string): number;
}

/** Which stall window a subject's job gets: its verb (backup, restore) or, for artifact.stored, verification. */
export function jobKindOf(subject: string): keyof ConsumerSettings['stallSeconds'] {
  if (subject.startsWith('backup.requested.')) return 'backup';
  if (subject.startsWith('restore.requested.')) return 'restore';
  if (subject.startsWith('artifact.stored.')) return 'verify';
  return 'other';
}

export function consumerPolicyOf(settings: ConsumerSettings = DEFAULT_CONSUMER_SETTINGS): ConsumerPolicy {
  return {
    backoff: { initialMs: settings.backoff.initialSeconds * 1000, maxMs: settings.backoff.maxSeconds * 1000 },
    stallMs: (subject) => settings.stallSeconds[jobKindOf(subject)] * 1000,
  };
}

/** Whether delivery `attempt` is the last one the consumer allows (maxDeliver 0 or less: no limit). */
export const isLastAttempt = (attempt: number, maxDeliver: number): boolean => maxDeliver > 0 && attempt >= maxDeliver;

/** What the runner does with a failed delivery; failure reports word their event from it. */
export interface FailureDecision {
  /** No further delivery follows: the error is permanent or this was the last attempt. */
  readonly final: boolean;
  readonly attempt: number;
  readonly maxDeliver: number;
  /** Redelivery delay when not final. */
  readonly retryInMs: number;
}

/**
 * Whether another delivery could succeed: a coded error says so itself; an error without a code
 * (a library's own, not yet mapped) may be transient, so it is retried until the last attempt.
 */
export const retriesMayHelp = (error: unknown): boolean => (error instanceof TidemarkError ? isRetryable(error) : true);

/** The runner's decision for `error` on delivery `attempt`. */
export function decideFailure(error: unknown, attempt: number, maxDeliver: number, policy: Pick<ConsumerPolicy, 'backoff'>): FailureDecision {
  const final = !retriesMayHelp(error) || isLastAttempt(attempt, maxDeliver);
  return { final, attempt, maxDeliver, retryInMs: final ? 0 : retryDelay(attempt, policy.backoff.initialMs, policy.backoff.maxMs) };
}
