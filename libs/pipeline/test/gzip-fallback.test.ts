import { beforeAll, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { collect, sampleBytes } from './helpers.js';

// TIDEMARK_ZSTD=off makes the pipeline behave as if the zstd binding failed to load. The switch is
// read once per process, and vitest runs each test file in its own process (pool: forks).
type Pipeline = typeof import('@tidemark/pipeline');
let pipeline: Pipeline;

beforeAll(async () => {
  process.env['TIDEMARK_ZSTD'] = 'off';
  pipeline = await import('@tidemark/pipeline');
});

describe('without the zstd binding', () => {
  it('reports zstd unavailable and defaults to gzip', () => {
    expect(pipeline.zstdAvailable()).toBe(false);
    expect(pipeline.defaultCompression()).toBe('gzip');
  });

  it('encodes a zstd request with gzip, records gzip with its own level, and round-trips', async () => {
    const data = sampleBytes(100_000);
    const { output, summary } = pipeline.encodeStream(Readable.from([data]), { compression: 'zstd', compressionLevel: 19 });
    const stored = await collect(output);
    const facts = await summary;
    expect(facts.pipeline).toEqual({ compression: 'gzip', compressionLevel: 6, encryption: null });
    expect(stored.subarray(0, 2).toString('hex')).toBe('1f8b');
    const decoded = pipeline.decodeStream(Readable.from([stored]), { pipeline: facts.pipeline, sha256: facts.sha256, storedBytes: facts.storedBytes }, pipeline.keyRingOf(undefined));
    expect((await collect(decoded)).equals(data)).toBe(true);
  });

  it('refuses to decode a zstd artifact with a clear error', async () => {
    const decoded = pipeline.decodeStream(
      Readable.from([Buffer.from('whatever')]),
      { pipeline: { compression: 'zstd', encryption: null }, sha256: '0'.repeat(64), storedBytes: 8 },
      pipeline.keyRingOf(undefined),
    );
    await expect(collect(decoded)).rejects.toThrow(/zstd native binding/);
  });
});
