import { describe, expect, it } from 'vitest';
import { chunkStream, DEFAULT_CHUNKER, type ChunkerSettings } from '@tidemark/chunks';
import { KiB, MiB, pseudoRandom, reads } from './helpers.js';

async function collect(data: Buffer, readBytes: number, settings?: ChunkerSettings): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of chunkStream(reads(data, readBytes), settings)) chunks.push(Buffer.from(chunk));
  return chunks;
}

describe('chunkStream', () => {
  const data = pseudoRandom(24 * MiB, 7);

  it('cuts the same boundaries whatever the read size, within the size bounds', async () => {
    const big = await collect(data, 4 * MiB);
    const small = await collect(data, 4 * KiB + 7);
    expect(big.map((c) => c.length)).toEqual(small.map((c) => c.length));
    expect(Buffer.concat(big).equals(data)).toBe(true);
    for (const chunk of big.slice(0, -1)) {
      expect(chunk.length).toBeGreaterThanOrEqual(DEFAULT_CHUNKER.minBytes);
      expect(chunk.length).toBeLessThanOrEqual(DEFAULT_CHUNKER.maxBytes);
    }
    const mean = data.length / big.length;
    expect(mean).toBeGreaterThan(0.5 * MiB);
    expect(mean).toBeLessThan(2 * MiB);
  });

  it('resynchronises after an insertion: only the chunks around it change', async () => {
    const before = await collect(data, 64 * KiB);
    const edited = Buffer.concat([data.subarray(0, 10 * MiB), Buffer.from('inserted'), data.subarray(10 * MiB)]);
    const after = await collect(edited, 64 * KiB);
    const known = new Set(before.map((c) => c.toString('base64')));
    const changed = after.filter((c) => !known.has(c.toString('base64')));
    expect(changed.length).toBeLessThanOrEqual(2);
  });

  it('cuts zeros at the maximum size and keeps a short tail', async () => {
    const zeros = Buffer.alloc(9 * MiB);
    expect((await collect(zeros, MiB)).map((c) => c.length)).toEqual([4 * MiB, 4 * MiB, MiB]);
    expect(await collect(Buffer.alloc(0), MiB)).toEqual([]);
    expect((await collect(Buffer.from('tiny'), MiB)).map(String)).toEqual(['tiny']);
  });

  it('refuses inconsistent sizes', async () => {
    await expect(collect(data, MiB, { minBytes: 2 * MiB, avgBytes: MiB, maxBytes: 4 * MiB })).rejects.toThrow(RangeError);
  });
});
