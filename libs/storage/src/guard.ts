import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { ByteRange, ObjectInfo, SaveOptions, StorageBackend } from './backend.js';

/** Runs one backend call; the runtime passes an opossum breaker with retries here. */
export type Guard = <T>(operation: string, call: () => Promise<T>) => Promise<T>;

/**
 * Wraps a backend so that stat/list-page/remove/open-start/save go through `guard` (a wrapper, as
 * restic's retry backend). Streams themselves are not re-tried once they have started.
 */
export function guardBackend(backend: StorageBackend, guard: Guard): StorageBackend {
  return {
    properties: backend.properties,
    save(key: string, body: Readable | Uint8Array, options?: SaveOptions): Promise<number> {
      if (body instanceof Uint8Array) return guard('save', () => backend.save(key, body, options));
      let lastError: unknown;
      const consumed = new TidemarkError('STORAGE_UNAVAILABLE', `saving ${JSON.stringify(key)} cannot be tried again: its source was partly read`, { retryable: false });
      return guard('save', async () => {
        // A stream can be read once: when a first attempt has consumed part of it, a retry here
        // would store a truncated object. The guard must stop (hence the non-retryable marker),
        // but the caller gets the first attempt's own failure: when that one was retryable, the
        // whole operation (a new source, a new stream) may still succeed on its next delivery.
        if (lastError !== undefined && (body.readableDidRead || body.destroyed)) throw consumed;
        try {
          return await backend.save(key, body, options);
        } catch (error) {
          lastError = error;
          throw error;
        }
      }).catch((error: unknown) => {
        // A save refused before it read its body (an open breaker) leaves the body unread, and its
        // producer (an encoding pipeline, a file, a dump) waiting for a reader forever. Close it, as
        // the backends do with a body they stop reading; the failure itself is this rejection.
        if (!body.destroyed) body.destroy();
        throw error === consumed ? lastError : error;
      });
    },
    open: (key: string, range?: ByteRange) => guard('open', () => backend.open(key, range)),
    ...(backend.readInto === undefined ? {} : { readInto: (key: string, offset: number, target: Uint8Array) => guard('read', () => backend.readInto!(key, offset, target)) }),
    stat: (key: string) => guard('stat', () => backend.stat(key)),
    remove: (key: string) => guard('remove', () => backend.remove(key)),
    list: (prefix: string) => guardedList(backend, guard, prefix),
    close: () => backend.close(),
  };
}

/**
 * Each page (each step of the listing) goes through the guard. When a step fails and the guard
 * retries, the listing starts over and skips what was already yielded.
 */
async function* guardedList(backend: StorageBackend, guard: Guard, prefix: string): AsyncIterable<ObjectInfo> {
  const yielded = new Set<string>();
  let iterator: AsyncIterator<ObjectInfo> | undefined;
  try {
    for (;;) {
      const step = await guard('list', async () => {
        iterator ??= backend.list(prefix)[Symbol.asyncIterator]();
        for (;;) {
          try {
            const result = await iterator.next();
            if (result.done || !yielded.has(result.value.key)) return result;
          } catch (error) {
            iterator = undefined; // a broken listing cannot continue; a retry starts a new one
            throw error;
          }
        }
      });
      if (step.done) return;
      yielded.add(step.value.key);
      yield step.value;
    }
  } finally {
    await iterator?.return?.();
  }
}
