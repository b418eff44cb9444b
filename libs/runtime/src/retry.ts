export interface RetryOptions {
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Default: isRetryable from contracts. */
  readonly shouldRetry?: (error: unknown) => boolean;
  readonly signal?: AbortSignal;
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}
/** Exponential backoff with full jitter. */
export declare function retryWithBackoff<T>(call: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T>;
