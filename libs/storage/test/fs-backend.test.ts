import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createFsBackend } from '@tidemark/storage';
import { describeBackendConformance } from './conformance.js';
import { readText } from './helpers.js';

const roots: string[] = [];
const freshRoot = async (): Promise<string> => {
  const root = await mkdtemp(join(tmpdir(), 'tidemark-fs-backend-'));
  roots.push(root);
  return root;
};
afterAll(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

describeBackendConformance('fs', async () => createFsBackend({ root: await freshRoot() }));

describe('fs backend', () => {
  it('creates its root and never lists its temp directory', async () => {
    const root = join(await freshRoot(), 'nested', 'root');
    const backend = await createFsBackend({ root });
    await backend.save('a', Buffer.from('x'));
    expect(await readdir(root)).toEqual(expect.arrayContaining(['.tmp', 'a']));
    const keys: string[] = [];
    for await (const object of backend.list('')) keys.push(object.key);
    expect(keys).toEqual(['a']);
    await expect(backend.save('.tmp/x', Buffer.from('x'))).rejects.toThrow(/invalid storage key/);
    await backend.close();
  });

  it('a failed save leaves no temp file behind', async () => {
    const root = await freshRoot();
    const backend = await createFsBackend({ root });
    const failing = Readable.from(
      (async function* () {
        yield Buffer.from('partial');
        throw new Error('boom');
      })(),
    );
    await expect(backend.save('x', failing)).rejects.toThrow('boom');
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    await backend.close();
  });

  it('close removes the temp files of saves that never finished', async () => {
    const root = await freshRoot();
    const backend = await createFsBackend({ root });
    const stuck = new Readable({ read() {} });
    stuck.push(Buffer.from('half of it'));
    const saving = backend.save('never', stuck);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await readdir(join(root, '.tmp'))).toHaveLength(1);
    await backend.close();
    expect(await readdir(join(root, '.tmp'))).toEqual([]);
    stuck.destroy(new Error('shutting down'));
    await expect(saving).rejects.toThrow();
  });

  it('removing the last object of a directory prunes the empty directories', async () => {
    const root = await freshRoot();
    const backend = await createFsBackend({ root });
    await backend.save('artifacts/pg/orders/1/data.bin', Buffer.from('x'));
    await backend.remove('artifacts/pg/orders/1/data.bin');
    expect((await readdir(root)).sort()).toEqual(['.tmp']);
    await backend.save('artifacts/pg/orders/1/data.bin', Buffer.from('again'));
    expect(await readText(await backend.open('artifacts/pg/orders/1/data.bin'))).toBe('again');
    await backend.close();
  });
});
