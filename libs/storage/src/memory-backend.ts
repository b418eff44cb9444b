import { Readable } from 'node:stream';
import type { ByteRange, ObjectInfo, SaveOptions, StorageBackend } from './backend.js';
import { checkKey, notFound } from './errors.js';
import { emptyStream, readAll, toReadable } from './streams.js';

interface StoredObject {
  readonly data: Buffer;
  readonly modifiedAt: Date;
}

/** An in-memory backend for unit tests of handlers (passes the same conformance suite). */
export function createMemoryBackend(): StorageBackend {
  const objects = new Map<string, StoredObject>();
  const get = (key: string): StoredObject => {
    checkKey(key);
    const object = objects.get(key);
    if (!object) throw notFound(key);
    return object;
  };
  return {
    properties: { kind: 'memory', location: 'memory' },
    async save(key: string, body: Readable | Uint8Array, _options?: SaveOptions): Promise<number> {
      checkKey(key);
      // The whole body is read before the object is replaced, so a failing body leaves the old one.
      const data = await readAll(toReadable(body));
      objects.set(key, { data, modifiedAt: new Date() });
      return data.length;
    },
    async open(key: string, range?: ByteRange): Promise<Readable> {
      const { data } = get(key);
      const start = Math.min(range?.offset ?? 0, data.length);
      const end = range?.length === undefined ? data.length : Math.min(start + range.length, data.length);
      return end > start ? Readable.from([data.subarray(start, end)], { objectMode: false }) : emptyStream();
    },
    async stat(key: string): Promise<ObjectInfo> {
      const { data, modifiedAt } = get(key);
      return { key, size: data.length, modifiedAt };
    },
    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      for (const [key, { data, modifiedAt }] of [...objects]) {
        if (key.startsWith(prefix)) yield { key, size: data.length, modifiedAt };
      }
    },
    async remove(key: string): Promise<void> {
      checkKey(key);
      objects.delete(key);
    },
    async close(): Promise<void> {},
  };
}
