import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Manifest } from '@tidemark/contracts';

export const MiB = 1024 * 1024;

/** Deterministic pseudo-random chunks, generated lazily so that the test itself does not buffer. */
export function* generatedChunks(totalBytes: number, chunkBytes = 64 * 1024, seed = 1): Generator<Buffer> {
  let state = seed >>> 0 || 1;
  for (let sent = 0; sent < totalBytes; ) {
    const size = Math.min(chunkBytes, totalBytes - sent);
    const chunk = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i += 4) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      if (i + 4 <= size) chunk.writeUInt32LE(state >>> 0, i);
      else for (let j = i; j < size; j++) chunk[j] = (state >>> (8 * (j - i))) & 0xff;
    }
    sent += size;
    yield chunk;
  }
}

export const generatedStream = (totalBytes: number, seed = 1): Readable => Readable.from(generatedChunks(totalBytes, 64 * 1024, seed), { objectMode: false });

export function sha256Of(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

export { sha256OfStream } from '@tidemark/pipeline';

export async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A source that yields `before` bytes and then fails, as a dump tool dying midway would. */
export function failingSource(before: number, message = 'source failed midway'): Readable {
  return Readable.from(
    (async function* () {
      yield* generatedChunks(before, 64 * 1024, 99);
      throw new Error(message);
    })(),
    { objectMode: false },
  );
}

export function sampleManifest(overrides: Partial<Manifest> & { id: string; dataKey: string }): Manifest {
  const { dataKey, ...rest } = overrides;
  return {
    manifestVersion: 1,
    engine: 'pg',
    target: 'orders',
    kind: 'logical',
    format: 'pg_dump-custom',
    requestId: `request-${overrides.id}`,
    createdAt: '2024-05-01T02:03:04.000Z',
    finishedAt: '2024-05-01T02:05:00.000Z',
    agent: { id: 'pg-agent-1', version: '0.1.0' },
    source: {},
    pipeline: { compression: 'none', encryption: null },
    data: { key: dataKey, storedBytes: 5, rawBytes: 5, sha256: 'a'.repeat(64) },
    verify: true,
    ...rest,
  };
}
