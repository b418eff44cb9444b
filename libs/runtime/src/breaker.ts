import CircuitBreaker from 'opossum';
import { TidemarkError } from '@tidemark/contracts';
import type { Logger } from './logger.js';

export interface BreakerOptions {
  /** Per-call timeout in ms (default 30 s; 0 disables, for long streams). */
  readonly timeoutMs?: number;
  readonly errorThresholdPercentage?: number;
  readonly resetTimeoutMs?: number;
  readonly volumeThreshold?: number;
  /** Errors for which this returns false do not count against the breaker (e.g. STORAGE_NOT_FOUND). */
  readonly isFailure?: (error: unknown) => boolean;
}

export interface Breaker {
  readonly name: string;
  /** Runs `call` through the breaker. When open: TidemarkError BREAKER_OPEN (retryable). Timeout: TIMEOUT. */
  fire<T>(call: () => Promise<T>): Promise<T>;
  readonly state: 'closed' | 'open' | 'half-open';
  shutdown(): void;
}

type Call = () => Promise<unknown>;

const errorCode = (error: unknown): unknown => (typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined);

/** An opossum circuit breaker around one external dependency; state changes are logged. */
export function createBreaker(name: string, logger: Logger, options: BreakerOptions = {}): Breaker {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const resetTimeoutMs = options.resetTimeoutMs ?? 30_000;
  const isFailure = options.isFailure;
  const circuit = new CircuitBreaker<[Call], unknown>((call: Call) => call(), {
    name,
    timeout: timeoutMs > 0 ? timeoutMs : false,
    errorThresholdPercentage: options.errorThresholdPercentage ?? 50,
    resetTimeout: resetTimeoutMs,
    volumeThreshold: options.volumeThreshold ?? 5,
    // opossum's errorFilter returns true for errors that must NOT count as failures.
    ...(isFailure ? { errorFilter: (error: unknown) => !isFailure(error) } : {}),
  });
  const log = logger.child({ breaker: name });
  circuit.on('open', () => log.warn({ state: 'open', retryInMs: resetTimeoutMs }, `breaker ${name} opened after repeated failures`));
  circuit.on('halfOpen', () => log.info({ state: 'half-open' }, `breaker ${name} is half-open: trying one call`));
  circuit.on('close', () => log.info({ state: 'closed' }, `breaker ${name} closed: calls succeed again`));

  return {
    name,
    get state() {
      if (circuit.opened) return 'open';
      if (circuit.halfOpen) return 'half-open';
      return 'closed';
    },
    async fire<T>(call: () => Promise<T>): Promise<T> {
      try {
        return (await circuit.fire(call)) as T;
      } catch (error) {
        const code = errorCode(error);
        if (code === 'EOPENBREAKER') {
          throw new TidemarkError('BREAKER_OPEN', `${name} is failing repeatedly; calls are paused, retry later`, { cause: error });
        }
        if (code === 'ETIMEDOUT' && !(error instanceof TidemarkError)) {
          throw new TidemarkError('TIMEOUT', `${name} did not answer within ${timeoutMs} ms; check that it is reachable`, { cause: error });
        }
        throw error;
      }
    },
    shutdown() {
      circuit.shutdown();
    },
  };
}
