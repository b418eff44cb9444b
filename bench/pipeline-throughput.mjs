// Encode/decode throughput of the streaming pipeline over generated, semi-compressible data.
// Run after building: npx tsc --build libs/pipeline && node bench/pipeline-throughput.mjs
// BENCH_MIB sets the volume per case (default 1024). Add --expose-gc for a steadier RSS baseline.
import { randomBytes, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decodeStream, encodeStream, keyRingOf } from '@tidemark/pipeline';

const MiB = 1024 * 1024;
const total = Number(process.env.BENCH_MIB ?? 1024) * MiB;
const PIECE = 64 * 1024;

// A 16 MiB pool (about 2.5:1 under zstd) read in pieces at shifting offsets, so generating input
// costs nothing next to the pipeline and the compressor still sees varied data.
const pool = (() => {
  const words = ['id', 'vector', '0.0312', '-1.207', 'tidemark', 'row', 'embedding', 'null', '\n', ','];
  const parts = [];
  for (let size = 0; size < 16 * MiB; ) {
    const noise = randomBytes(24).toString('base64');
    const line = `${words[size % 10]},${noise},${words[(size >> 3) % 10]},${words[(size >> 5) % 10]}\n`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, 16 * MiB);
})();

function source() {
  let produced = 0;
  return new Readable({
    highWaterMark: PIECE,
    read() {
      if (produced >= total) return void this.push(null);
      const offset = (produced * 7) % (pool.length - PIECE);
      this.push(pool.subarray(offset, offset + PIECE));
      produced += PIECE;
    },
  });
}

globalThis.gc?.();
const baselineRss = process.memoryUsage().rss;
let peakRss = baselineRss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);

/** A sink that only hashes, standing in for an upload; keeps the stored bytes nowhere. */
const hashingSink = (hash) =>
  new Writable({
    highWaterMark: PIECE,
    write(piece, _encoding, done) {
      hash.update(piece);
      done();
    },
  });

const scratch = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
const mbps = (bytes, ms) => ((bytes / MiB) / (ms / 1000)).toFixed(1);
const key = { id: 'bench', key: randomBytes(32) };
const cases = [
  { name: 'zstd', options: { compression: 'zstd' } },
  { name: 'gzip', options: { compression: 'gzip' } },
  { name: 'zstd+aes', options: { compression: 'zstd', key } },
  { name: 'none+aes', options: { compression: 'none', key } },
];

console.log(`pipeline throughput over ${total / MiB} MiB per case (node ${process.version})`);
for (const { name, options } of cases) {
  // The stored bytes go to a temporary file (as they would to an upload) and are decoded back from it.
  const file = join(scratch, `${name}.bin`);
  const started = performance.now();
  const encoded = encodeStream(source(), options);
  await pipeline(encoded.output, createWriteStream(file));
  const summary = await encoded.summary;
  const encodeMs = performance.now() - started;
  const decodeStarted = performance.now();
  const decoded = decodeStream(createReadStream(file), { pipeline: summary.pipeline, sha256: summary.sha256, storedBytes: summary.storedBytes }, keyRingOf(key));
  await pipeline(decoded, hashingSink(createHash('sha1')));
  const decodeMs = performance.now() - decodeStarted;
  rmSync(file);
  const ratio = (summary.rawBytes / summary.storedBytes).toFixed(2);
  console.log(`${name.padEnd(9)} encode ${mbps(total, encodeMs).padStart(7)} MB/s   decode ${mbps(total, decodeMs).padStart(7)} MB/s   ratio ${ratio}`);
}
clearInterval(sampler);
rmSync(scratch, { recursive: true, force: true });
console.log(`peak RSS ${(peakRss / MiB).toFixed(0)} MiB (${((peakRss - baselineRss) / MiB).toFixed(0)} MiB above the baseline with the input pool built)`);
