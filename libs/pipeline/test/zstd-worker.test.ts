// The worker-thread zstd decoder (used for streams of 64 MiB and more) against the same data as the
// in-thread one: exact bytes across uneven input pieces, bounded output under huge expansion, and
// the same failures for damaged and cut-off input.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { zstdWorkerDecompressStage } from '../src/zstd-worker.js';
import { ZstdDataError } from '../src/compression.js';
import { ZSTD_WORKER_THRESHOLD_BYTES } from '../src/compression.js';
import { decode, encode, newKey, ringWith, sampleBytes } from './helpers.js';

const stage = () => zstdWorkerDecompressStage((message, endedMidFrame) => new ZstdDataError(message, endedMidFrame));

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function decompress(compressed: Buffer, size = 65_536): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of stage()(pieces(compressed, size))) out.push(piece);
  return Buffer.concat(out);
}

describe('zstd decompression on a worker thread', () => {
  it('restores the exact bytes, whatever the input piece sizes', async () => {
    const data = Buffer.concat([sampleBytes(3_000_000), Buffer.alloc(2_000_000, 7), sampleBytes(100_001)]);
    const { stored } = await encode(data, { compression: 'zstd' });
    for (const size of [1_000, 65_536, 1_000_000]) expect((await decompress(stored, size)).equals(data)).toBe(true);
  });

  it('hands out one buffer at a time when a small input expands hugely, and stops when the consumer does', async () => {
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    const { stored } = await encode(zeros, { compression: 'zstd' });
    expect(stored.length).toBeLessThan(64 * 1024);
    let received = 0;
    let largest = 0;
    for await (const piece of stage()(pieces(stored, stored.length))) {
      received += piece.length;
      largest = Math.max(largest, piece.length);
      if (received >= 8 * 1024 * 1024) break;
    }
    expect(largest).toBeLessThanOrEqual(256 * 1024);
    expect(received).toBeGreaterThanOrEqual(8 * 1024 * 1024);
  });

  it('fails on damaged data and on a stream cut inside a frame', async () => {
    const { stored } = await encode(sampleBytes(500_000), { compression: 'zstd' });
    const damaged = Buffer.from(stored);
    damaged.fill(0xff, 100, 400);
    await expect(decompress(damaged)).rejects.toBeInstanceOf(ZstdDataError);
    await expect(decompress(stored.subarray(0, stored.length - 10))).rejects.toMatchObject({ endedMidFrame: true });
  });

  it('passes the source’s own error through', async () => {
    const failing = Readable.from((async function* () {
      yield Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
      throw new Error('the source broke');
    })());
    await expect((async () => { for await (const _ of stage()(failing)) void _; })()).rejects.toThrow('the source broke');
  });

  it('serves decodeStream for large stored objects: exact bytes, and a cut-off object is INTEGRITY_TRUNCATED', async () => {
    const key = newKey();
    const data = randomBytes(ZSTD_WORKER_THRESHOLD_BYTES + 1_000_000); // incompressible: stored above the threshold
    const encoded = await encode(data, { compression: 'zstd', key });
    expect(encoded.summary.storedBytes).toBeGreaterThanOrEqual(ZSTD_WORKER_THRESHOLD_BYTES);
    const whole = await decode(encoded.stored, encoded, ringWith(key));
    expect(whole.error).toBeUndefined();
    expect(whole.data!.equals(data)).toBe(true);
    const cut = await decode(encoded.stored.subarray(0, encoded.stored.length - 5000), encoded, ringWith(key));
    expect(cut.error).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
  }, 60_000);
});
