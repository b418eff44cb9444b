// A wrapper implementing QdrantPort that sends every call through an opossum breaker with a
// timeout and maps errors (restic-style: cross-cutting behaviour as a wrapper of the same port).
// Quick calls share one breaker; slow ones (snapshot create/upload, collection create/delete)
// use a second breaker with a longer timeout, so one slow snapshot does not trip quick calls.
// Only retryable failures (unreachable, 5xx, timeouts) count against a breaker: a 404 is an answer.
import { createBreaker, type Breaker, type Logger } from '@tidemark/runtime';
import { isRetryable } from '@tidemark/contracts';
import { mapQdrantError } from './errors.js';
import type { QdrantPort } from './port.js';

export interface GuardOptions {
  /** Per-call timeout of quick calls (default 30 s). */
  readonly timeoutMs?: number;
  /** Per-call timeout of slow calls (default 10 min). */
  readonly slowTimeoutMs?: number;
  readonly resetTimeoutMs?: number;
  readonly volumeThreshold?: number;
}

export interface GuardedPort extends QdrantPort {
  readonly breakers: { readonly quick: Breaker; readonly slow: Breaker };
  shutdown(): void;
}

const SLOW: ReadonlySet<keyof QdrantPort> = new Set(['createSnapshot', 'uploadSnapshot', 'createCollection', 'deleteCollection']);

export function guardPort(port: QdrantPort, logger: Logger, name: string, options: GuardOptions = {}): GuardedPort {
  const common = {
    isFailure: (error: unknown) => isRetryable(mapQdrantError(error, 'call')),
    ...(options.resetTimeoutMs === undefined ? {} : { resetTimeoutMs: options.resetTimeoutMs }),
    ...(options.volumeThreshold === undefined ? {} : { volumeThreshold: options.volumeThreshold }),
  };
  const quick = createBreaker(`qdrant:${name}`, logger, { ...common, timeoutMs: options.timeoutMs ?? 30_000 });
  const slow = createBreaker(`qdrant:${name}:slow`, logger, { ...common, timeoutMs: options.slowTimeoutMs ?? 600_000 });
  const wrapped = {} as Record<keyof QdrantPort, unknown>;
  for (const key of Object.keys(PORT_METHODS) as (keyof QdrantPort)[]) {
    const breaker = SLOW.has(key) ? slow : quick;
    wrapped[key] = (...args: unknown[]) =>
      breaker.fire(async () => {
        try {
          return await (port[key] as (...a: unknown[]) => Promise<unknown>).apply(port, args);
        } catch (error) {
          throw mapQdrantError(error, key);
        }
      });
  }
  return {
    ...(wrapped as unknown as QdrantPort),
    breakers: { quick, slow },
    shutdown() {
      quick.shutdown();
      slow.shutdown();
    },
  };
}

// Every method of the port, so a new one cannot be forgotten by the wrapper (the compiler checks).
const PORT_METHODS: Record<keyof QdrantPort, true> = {
  version: true, cluster: true, listCollections: true, collectionExists: true, getCollection: true, createCollection: true, createPayloadIndex: true,
  deleteCollection: true, count: true, scroll: true, upsert: true, deletePoints: true, query: true, listAliases: true,
  updateAliases: true, createSnapshot: true, listSnapshots: true, deleteSnapshot: true, downloadSnapshot: true, uploadSnapshot: true,
};
