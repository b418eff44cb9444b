import { afterAll, describe, expect, it } from 'vitest';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { createHash, randomFillSync, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decodeStream, encodeStream, keyRingOf } from '@tidemark/pipeline';

const MiB = 1024 * 1024;
const TOTAL = 200 * MiB;
const PIECE = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'tidemark-flat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 200 MiB of half-random, half-repetitive bytes, generated on demand and hashed as it goes. */
function generated(hash: ReturnType<typeof createHash>): Readable {
  const text = Buffer.from('row,0.125,0.25,embedding,vector,'.repeat(PIECE / 64));
  let produced = 0;
  return new Readable({
    highWaterMark: PIECE,
    read() {
      if (produced >= TOTAL) return void this.push(null);
      const piece = Buffer.allocUnsafe(PIECE);
      randomFillSync(piece, 0, PIECE / 2);
      text.copy(piece, PIECE / 2, 0, PIECE / 2);
      produced += PIECE;
      hash.update(piece);
      this.push(piece);
    },
  });
}

function rssSampler(): { stop(): number } {
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss) - baseline;
    },
  };
}

describe('memory stays flat', () => {
  it('round-trips 200 MiB through zstd and encryption with RSS growth under 64 MiB', async () => {
    const key = { id: 'flat', key: randomBytes(32) };
    const sourceHash = createHash('sha256');
    const file = join(dir, 'artifact.bin');

    const encodeRss = rssSampler();
    const encoded = encodeStream(generated(sourceHash), { compression: 'zstd', key });
    await pipeline(encoded.output, createWriteStream(file));
    const summary = await encoded.summary;
    const encodeGrowth = encodeRss.stop();
    expect(summary.rawBytes).toBe(TOTAL);

    const decodeRss = rssSampler();
    const decodedHash = createHash('sha256');
    let decodedBytes = 0;
    await pipeline(
      decodeStream(createReadStream(file), { pipeline: summary.pipeline, sha256: summary.sha256, storedBytes: summary.storedBytes }, keyRingOf(key)),
      new Writable({
        write(piece: Buffer, _encoding, done) {
          decodedBytes += piece.length;
          decodedHash.update(piece);
          done();
        },
      }),
    );
    const decodeGrowth = decodeRss.stop();

    expect(decodedBytes).toBe(TOTAL);
    expect(decodedHash.digest('hex')).toBe(sourceHash.digest('hex'));
    expect(encodeGrowth).toBeLessThan(64 * MiB);
    expect(decodeGrowth).toBeLessThan(64 * MiB);
  });
});
