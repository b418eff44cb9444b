import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { createMemoryBackend, guardBackend, type Guard, type ObjectInfo, type StorageBackend } from '@tidemark/storage';
import { readText } from './helpers.js';

/** Retries retryable failures up to `attempts` times, recording each operation. */
function retryingGuard(operations: string[], attempts = 3): Guard {
  return async <T>(operation: string, call: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      operations.push(operation);
      try {
        return await call();
      } catch (error) {
        if (attempt >= attempts || !(error instanceof TidemarkError) || !error.retryable) throw error;
      }
    }
  };
}

const flaky = (): TidemarkError => new TidemarkError('STORAGE_UNAVAILABLE', 'connection reset');

describe('guarded backend', () => {
  it('routes every call through the guard', async () => {
    const operations: string[] = [];
    const backend = guardBackend(createMemoryBackend(), retryingGuard(operations));
    await backend.save('a', Buffer.from('x'));
    await backend.stat('a');
    await readText(await backend.open('a'));
    for await (const _ of backend.list('')) void _;
    await backend.remove('a');
    expect(operations).toEqual(['save', 'stat', 'open', 'list', 'list', 'remove']);
  });

  it('closes the body of a save it refuses before the save reads it (an open breaker), so its producer does not wait forever', async () => {
    const open: Guard = () => Promise.reject(new TidemarkError('BREAKER_OPEN', 'storage is failing repeatedly'));
    const body = Readable.from(['never read']);
    await expect(guardBackend(createMemoryBackend(), open).save('a', body)).rejects.toMatchObject({ code: 'BREAKER_OPEN', retryable: true });
    expect(body.destroyed).toBe(true);
  });

  it('retries a failed save of bytes', async () => {
    const inner = createMemoryBackend();
    let failures = 1;
    const backend = guardBackend({ ...inner, save: async (key, body, options) => (failures-- > 0 ? Promise.reject(flaky()) : inner.save(key, body, options)) }, retryingGuard([]));
    expect(await backend.save('a', Buffer.from('abc'))).toBe(3);
  });

  it('a stream that a failed attempt has read is not saved again, and its retryable failure stays retryable', async () => {
    const inner = createMemoryBackend();
    let calls = 0;
    const failingAfterRead: StorageBackend = {
      ...inner,
      save: async (_key, body) => {
        calls++;
        if (body instanceof Readable) body.read();
        throw flaky();
      },
    };
    const backend = guardBackend(failingAfterRead, retryingGuard([]));
    const error = await backend.save('a', Readable.from([Buffer.from('abc')])).catch((e: unknown) => e);
    // The first attempt's own error: the whole operation (a fresh source) is retried by its consumer.
    expect(error).toMatchObject({ code: 'STORAGE_UNAVAILABLE', message: 'connection reset', retryable: true });
    expect(calls).toBe(1);
  });

  it('a listing that fails midway is retried without repeating objects', async () => {
    const inner = createMemoryBackend();
    for (const key of ['p/1', 'p/2', 'p/3']) await inner.save(key, Buffer.from(key));
    let broken = true;
    const flakyList: StorageBackend = {
      ...inner,
      async *list(prefix: string): AsyncIterable<ObjectInfo> {
        let count = 0;
        for await (const object of inner.list(prefix)) {
          if (broken && ++count === 3) {
            broken = false;
            throw flaky();
          }
          yield object;
        }
      },
    };
    const keys: string[] = [];
    for await (const object of guardBackend(flakyList, retryingGuard([])).list('p/')) keys.push(object.key);
    expect(keys.sort()).toEqual(['p/1', 'p/2', 'p/3']);
  });
});
