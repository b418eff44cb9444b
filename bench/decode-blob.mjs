// Chunk blob decoding (libs/chunks decodeBlob), the per-chunk step of every files restore:
// BENCH_SMALL blobs of 2 KiB and BENCH_LARGE blobs of 1 MiB, zstd and encrypted, decoded in turn.
// Prints blobs/s and MiB/s of plaintext for each size.
// Run after building: npx tsc --build libs/chunks && node bench/decode-blob.mjs
import { randomBytes } from 'node:crypto';
import { keyRingOf } from '@tidemark/pipeline';
import { encodeBlob, decodeBlob } from '../libs/chunks/dist/blob.js';
import { chunkIdFunctionFor } from '../libs/chunks/dist/chunk-id.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SMALL = Number(process.env.BENCH_SMALL ?? 2000);
const LARGE = Number(process.env.BENCH_LARGE ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const key = { id: 'bench', key: randomBytes(32) };
const keys = keyRingOf(key);

/** Half random, half text: compressible like real files, not trivially so. */
function content(size, seed) {
  const out = randomBytes(size);
  const words = ['the', 'contract', 'clause', 'vector', 'embedding', '2024', 'of', '\n'];
  let text = '';
  while (text.length < size / 2) text += words[(seed = (seed * 1103515245 + 12345) & 0x7fffffff) % words.length] + ' ';
  out.write(text.slice(0, size / 2), 0, 'latin1');
  return out;
}

async function run(label, count, size) {
  const blobs = [];
  for (let index = 0; index < count; index++) {
    const plain = content(size, index + 1);
    const { bytes, pipeline } = encodeBlob(plain, { compression: 'zstd', key });
    blobs.push({ bytes, pipeline, id: chunkIdFunctionFor(pipeline, keys)(plain) });
  }
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (const blob of blobs) await decodeBlob(blob.bytes, blob.pipeline, keys, blob.id);
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  console.log(`${label}: ${count} blobs in ${best.toFixed(3)} s = ${Math.round(count / best)} blobs/s, ${((count * size) / MiB / best).toFixed(1)} MiB/s (best of ${ROUNDS})`);
}

await run('2 KiB blobs', SMALL, 2 * KiB);
await run('1 MiB blobs', LARGE, MiB);
