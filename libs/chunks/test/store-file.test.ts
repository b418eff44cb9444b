// storeFile on the codec workers against storeFileOnThisThread (chunkStream, put): the same chunks,
// ids, digest and stored bytes, for files that end inside a read, span slabs, grew past their size
// hint, or are fed as a stream; and a file that cannot be read fails with its own error, while the
// session stays usable.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openChunkRepository, storeFileOnThisThread, type ChunkRepository, type FileInput, type PutResult } from '@tidemark/chunks';
import { KiB, MiB, pseudoRandom, reads, repositoryOptions } from './helpers.js';

const sizes = [0, 1, 5 * KiB, 300 * KiB, 3 * MiB + 17, 19 * MiB + 5];

describe('storeFile on the codec workers', () => {
  let dir: string;
  let repository: ChunkRepository;
  let reference: ChunkRepository;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidemark-store-file-'));
    const options = repositoryOptions();
    repository = await openChunkRepository(options);
    reference = await openChunkRepository({ ...options, backend: repositoryOptions().backend });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const size of sizes) {
    for (const eager of [false, true]) {
      it(`${size} bytes (${eager ? 'eager' : 'asking first'}): by path, by stream, and with a size hint that is wrong, as on one thread`, async () => {
        // Half random, half text; other bytes for each case, so each stores its own chunks.
        const data = Buffer.concat([pseudoRandom(size, 2 * size + (eager ? 2 : 1)).subarray(0, Math.floor(size / 2)), Buffer.alloc(size - Math.floor(size / 2), eager ? 'eager text ' : 'text ')]);
        const path = join(dir, `f-${size}-${eager}`);
        await writeFile(path, data);
        const session = await repository.openSession(`s-${size}-${eager}`);
        const referenceSession = await reference.openSession(`r-${size}-${eager}`);
        const puts: PutResult[] = [];
        const inputs: FileInput[] = [
          { path: Buffer.from(path), sizeHint: size, eager },
          { stream: reads(data, 100 * KiB), sizeHint: size, eager },
          { path: Buffer.from(path), sizeHint: 10, eager },
        ];
        const expected = await storeFileOnThisThread({ chunker: reference.chunker, chunkId: reference.chunkId, put: (id, plain) => referenceSession.put(id, plain) }, { stream: reads(data), sizeHint: size });
        for (const input of inputs) {
          const stored = await session.storeFile(input, (put) => puts.push(put));
          expect(stored.chunks).toEqual(expected.chunks);
          expect(stored.sha256).toBe(expected.sha256);
          expect(stored.size).toBe(size);
          if ('path' in input) expect(stored.after).toMatchObject({ size });
        }
        // Stored once: the second and third time every chunk was there.
        expect(puts.filter((put) => put.stored)).toHaveLength(new Set(expected.chunks.map((chunk) => chunk.id)).size);
        await session.flush();
        for (const chunk of expected.chunks) expect((await repository.readChunk(chunk.id)).length).toBe(chunk.size);
        await session.close();
        await referenceSession.close();
      });
    }
  }

  it('a path that is gone, or a directory, fails with its own error (ENOENT, ENOTREG); the session stays usable', async () => {
    const session = await repository.openSession('s-errors');
    await expect(session.storeFile({ path: Buffer.from(join(dir, 'missing')), sizeHint: 1 })).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(join(dir, 'a-directory'));
    await expect(session.storeFile({ path: Buffer.from(join(dir, 'a-directory')), sizeHint: 1 })).rejects.toMatchObject({ code: 'ENOTREG' });
    const failing = (async function* () {
      yield pseudoRandom(600 * KiB, 9);
      throw Object.assign(new Error('the download dropped'), { code: 'ECONNRESET' });
    })();
    await expect(session.storeFile({ stream: failing, sizeHint: 2 * MiB, eager: true })).rejects.toThrow('the download dropped');
    await writeFile(join(dir, 'fine'), 'fine');
    expect((await session.storeFile({ path: Buffer.from(join(dir, 'fine')), sizeHint: 4 })).size).toBe(4);
    await session.flush();
    await session.close();
  });
});
