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
/** An opossum circuit breaker around one external dependency; state changes are logged. */
export declare function createBreaker(name: string, logger: Logger, options?: BreakerOptions): Breaker;
