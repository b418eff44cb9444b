// The artifact store as every service that touches the bucket opens it: behind one breaker and a
// retry guard, so an outage fails fast instead of piling up calls.
import { isRetryable, TidemarkError } from '@tidemark/contracts';
import { createBreaker, retryWithBackoff, type Breaker, type Logger } from '@tidemark/runtime';
import { ArtifactStore } from './artifact-store.js';
import { createBackend, type StorageConfig } from './config.js';
import { guardBackend, type Guard } from './guard.js';

export interface GuardedStore {
  readonly store: ArtifactStore;
  /** The breaker's state, for health checks. */
  readonly breakerState: () => Breaker['state'];
  /** Closes the backend and the breaker. */
  close(): Promise<void>;
}

/**
 * The artifact store over the configured backend. Each backend call is retried with backoff
 * around an opossum breaker, so every attempt counts towards opening it and an open breaker is
 * not hammered. No call timeout: a save streams a whole dump.
 */
export async function openArtifactStore(config: StorageConfig, logger: Logger): Promise<GuardedStore> {
  const breaker = createBreaker('storage', logger, {
    timeoutMs: 0,
    // Every call is bounded by the backend's request timeout or stall detector, so one trial call
    // every 10 s costs little, and work resumes within 10 s of the storage coming back.
    resetTimeoutMs: 10_000,
    // A missing object is an answer, not an outage.
    isFailure: (error) => !(error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND'),
  });
  const guard: Guard = (operation, call) =>
    retryWithBackoff(() => breaker.fire(call), {
      attempts: 3,
      baseDelayMs: 200,
      maxDelayMs: 2_000,
      shouldRetry: (error) => isRetryable(error) && !(error instanceof TidemarkError && error.code === 'BREAKER_OPEN'),
      onRetry: (error, attempt, delayMs) => logger.warn({ err: error, operation, attempt, delayMs }, 'storage call failed, retrying'),
    });
  const backend = guardBackend(await createBackend(config), guard);
  return {
    store: new ArtifactStore(backend),
    breakerState: () => breaker.state,
    close: async () => {
      await backend.close();
      breaker.shutdown();
    },
  };
}
