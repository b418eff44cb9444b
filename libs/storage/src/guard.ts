import type { StorageBackend } from './backend.js';
/** Runs one backend call; the runtime passes an opossum breaker with retries here. */
export type Guard = <T>(operation: string, call: () => Promise<T>) => Promise<T>;
/**
 * Wraps a backend so that stat/list-page/remove/open-start/save go through `guard` (a wrapper, as
 * restic's retry backend). Streams themselves are not re-tried once they have started.
 */
export declare function guardBackend(backend: StorageBackend, guard: Guard): StorageBackend;
