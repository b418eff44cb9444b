// One behavioural suite that every StorageBackend must pass (after restic's backend test suite).
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import type { StorageBackend } from '@tidemark/storage';
import { MiB, failingSource, generatedChunks, generatedStream, readText, sha256Of, sha256OfStream } from './helpers.js';

/** Each call returns a fresh, empty backend; the suite closes it after the test. */
export type BackendFactory = () => Promise<StorageBackend>;

async function expectCode(promise: Promise<unknown>, code: string, retryable?: boolean): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a ${code} error`).toBeInstanceOf(TidemarkError);
  expect((error as TidemarkError).code).toBe(code);
  if (retryable !== undefined) expect((error as TidemarkError).retryable).toBe(retryable);
}

async function keysOf(backend: StorageBackend, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of backend.list(prefix)) keys.push(object.key);
  return keys.sort();
}

const text = (value: string): Buffer => Buffer.from(value, 'utf8');

export function describeBackendConformance(name: string, factory: BackendFactory): void {
  describe(`${name} backend conformance`, () => {
    let open: StorageBackend[] = [];
    const fresh = async (): Promise<StorageBackend> => {
      const backend = await factory();
      open.push(backend);
      return backend;
    };
    afterEach(async () => {
      await Promise.all(open.map((backend) => backend.close()));
      open = [];
    });

    it('saves bytes and opens them again', async () => {
      const backend = await fresh();
      expect(await backend.save('a/b/c.txt', text('hello, tide'))).toBe(11);
      expect(await readText(await backend.open('a/b/c.txt'))).toBe('hello, tide');
    });

    it('saves a stream and reports the bytes written', async () => {
      const backend = await fresh();
      const written = await backend.save('stream.bin', Readable.from([text('abc'), text('defg')]));
      expect(written).toBe(7);
      expect(await readText(await backend.open('stream.bin'))).toBe('abcdefg');
    });

    it('saves an empty object', async () => {
      const backend = await fresh();
      expect(await backend.save('empty', Readable.from([]))).toBe(0);
      expect((await backend.stat('empty')).size).toBe(0);
      expect(await readText(await backend.open('empty'))).toBe('');
    });

    it('opens byte ranges', async () => {
      const backend = await fresh();
      await backend.save('range.txt', text('0123456789'));
      expect(await readText(await backend.open('range.txt', { offset: 3, length: 4 }))).toBe('3456');
      expect(await readText(await backend.open('range.txt', { offset: 0, length: 2 }))).toBe('01');
      expect(await readText(await backend.open('range.txt', { offset: 7 }))).toBe('789');
      expect(await readText(await backend.open('range.txt', { offset: 8, length: 100 }))).toBe('89');
      expect(await readText(await backend.open('range.txt', { offset: 5, length: 0 }))).toBe('');
    });

    it('stat reports size and modification time', async () => {
      const backend = await fresh();
      const before = Date.now();
      await backend.save('sized', text('12345'));
      const info = await backend.stat('sized');
      expect(info.key).toBe('sized');
      expect(info.size).toBe(5);
      // Some stores keep whole seconds.
      expect(info.modifiedAt.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      expect(info.modifiedAt.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    });

    it('a missing object is STORAGE_NOT_FOUND for stat and open, and not retryable', async () => {
      const backend = await fresh();
      await expectCode(backend.stat('missing/object'), 'STORAGE_NOT_FOUND', false);
      await expectCode(backend.open('missing/object'), 'STORAGE_NOT_FOUND', false);
      await expectCode(backend.open('missing/object', { offset: 2, length: 3 }), 'STORAGE_NOT_FOUND', false);
    });

    it('a directory-like prefix is not an object', async () => {
      const backend = await fresh();
      await backend.save('dir/file', text('x'));
      await expectCode(backend.stat('dir'), 'STORAGE_NOT_FOUND');
      await expectCode(backend.open('dir'), 'STORAGE_NOT_FOUND');
    });

    it('lists every object under a prefix, recursively, with sizes', async () => {
      const backend = await fresh();
      await backend.save('artifacts/pg/orders/1/data.bin', text('12'));
      await backend.save('artifacts/pg/orders/2/data.bin', text('123'));
      await backend.save('artifacts/pg/ordersx/1/data.bin', text('1'));
      await backend.save('artifacts/qdrant/docs/1/data.bin', text('1'));
      await backend.save('other/file', text('1'));
      expect(await keysOf(backend, 'artifacts/pg/orders/')).toEqual(['artifacts/pg/orders/1/data.bin', 'artifacts/pg/orders/2/data.bin']);
      // A prefix need not end at a '/'.
      expect(await keysOf(backend, 'artifacts/pg/ord')).toEqual([
        'artifacts/pg/orders/1/data.bin',
        'artifacts/pg/orders/2/data.bin',
        'artifacts/pg/ordersx/1/data.bin',
      ]);
      expect(await keysOf(backend, '')).toHaveLength(5);
      expect(await keysOf(backend, 'nothing/here/')).toEqual([]);
      const sizes: Record<string, number> = {};
      for await (const object of backend.list('artifacts/pg/orders/')) sizes[object.key] = object.size;
      expect(sizes).toEqual({ 'artifacts/pg/orders/1/data.bin': 2, 'artifacts/pg/orders/2/data.bin': 3 });
    });

    it('remove deletes the object and is idempotent', async () => {
      const backend = await fresh();
      await backend.save('gone/soon', text('x'));
      await backend.save('gone/stays', text('y'));
      await backend.remove('gone/soon');
      await backend.remove('gone/soon');
      await backend.remove('never/existed');
      await expectCode(backend.stat('gone/soon'), 'STORAGE_NOT_FOUND');
      expect(await keysOf(backend, 'gone/')).toEqual(['gone/stays']);
    });

    it('a removed object can be saved again', async () => {
      const backend = await fresh();
      await backend.save('a/b', text('one'));
      await backend.remove('a/b');
      await backend.save('a/b', text('two'));
      expect(await readText(await backend.open('a/b'))).toBe('two');
    });

    it('save overwrites the whole object', async () => {
      const backend = await fresh();
      await backend.save('over', text('a long first version'));
      await backend.save('over', text('short'));
      expect(await readText(await backend.open('over'))).toBe('short');
      expect((await backend.stat('over')).size).toBe(5);
    });

    it('save whose source fails leaves no object', async () => {
      const backend = await fresh();
      await expect(backend.save('broken', failingSource(100 * 1024))).rejects.toThrow('source failed midway');
      await expectCode(backend.stat('broken'), 'STORAGE_NOT_FOUND');
      expect(await keysOf(backend, '')).toEqual([]);
    });

    it('save whose source fails keeps the old object intact', async () => {
      const backend = await fresh();
      await backend.save('kept', text('the old version'));
      await expect(backend.save('kept', failingSource(100 * 1024))).rejects.toThrow('source failed midway');
      expect(await readText(await backend.open('kept'))).toBe('the old version');
    });

    it('save whose multi-MiB source fails after several MiB leaves no object and keeps the old one', async () => {
      const backend = await fresh();
      await backend.save('big/kept', text('old'));
      await expect(backend.save('big/kept', failingSource(20 * MiB))).rejects.toThrow('source failed midway');
      await expect(backend.save('big/new', failingSource(20 * MiB), { size: 30 * MiB })).rejects.toThrow('source failed midway');
      expect(await readText(await backend.open('big/kept'))).toBe('old');
      expect(await keysOf(backend, 'big/')).toEqual(['big/kept']);
    });

    it('an unfinished save is invisible to list and stat', async () => {
      const backend = await fresh();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const source = Readable.from(
        (async function* () {
          yield text('first half;');
          await gate;
          yield text('second half');
        })(),
        { objectMode: false },
      );
      const saving = backend.save('pending/object', source);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await keysOf(backend, '')).toEqual([]);
      await expectCode(backend.stat('pending/object'), 'STORAGE_NOT_FOUND');
      release();
      expect(await saving).toBe(22);
      expect(await keysOf(backend, '')).toEqual(['pending/object']);
    });

    for (const sizeKnown of [false, true]) {
      it(`streams a 20 MiB save with ${sizeKnown ? 'known' : 'unknown'} size and reads it back byte for byte`, async () => {
        const backend = await fresh();
        const total = 20 * MiB + 12_345;
        const expected = sha256Of(generatedChunks(total, 64 * 1024, 7));
        const written = await backend.save('large/object.bin', generatedStream(total, 7), sizeKnown ? { size: total } : {});
        expect(written).toBe(total);
        expect((await backend.stat('large/object.bin')).size).toBe(total);
        expect(await sha256OfStream(await backend.open('large/object.bin'))).toEqual({ sha256: expected, bytes: total });
        // A range across the boundary of the first 8 MiB part.
        const all = Buffer.concat([...generatedChunks(total, 64 * 1024, 7)]);
        const rangeBytes = await sha256OfStream(await backend.open('large/object.bin', { offset: 8 * MiB - 10, length: 20 }));
        expect(rangeBytes).toEqual({ sha256: sha256Of([all.subarray(8 * MiB - 10, 8 * MiB + 10)]), bytes: 20 });
      });
    }

    it('keys that climb out of the store are refused', async () => {
      const backend = await fresh();
      for (const key of ['../escape', 'a/../../b', '/absolute', 'a//b', '']) {
        await expect(backend.save(key, text('x'))).rejects.toThrow(/invalid storage key/);
      }
    });
  });
}
