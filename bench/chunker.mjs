// Content-defined chunking, compared: FastCDC's gear hash with normalized chunking (the one
// libs/chunks uses, through its real chunkStream), a buzhash rolling hash over a 64-byte window
// (restic/borg-style: a hash of a sliding window, one mask), and fixed-size blocks as a baseline.
// Same min/avg/max for all (256 KiB / 1 MiB / 4 MiB). Prints throughput on ~256 MiB of mixed data
// (random and text-like), the chunk size distribution, and how much of a 64 MiB buffer still
// deduplicates after inserting or deleting a few bytes at 100 random places.
// Run after building: npx tsc --build libs/chunks && node bench/chunker.mjs   (BENCH_MIB=256)
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chunkStream, DEFAULT_CHUNKER } from '@tidemark/chunks';

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.BENCH_MIB ?? 256) * MiB;
const READ = MiB;
const { minBytes, avgBytes, maxBytes } = DEFAULT_CHUNKER;

// Deterministic pseudo-randomness for the edits (the data itself may be truly random).
let seed = 12345;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);

/** Mixed data: 1 MiB stretches of random bytes and of text-like lines, alternating at random. */
function mixedData(bytes) {
  const out = Buffer.allocUnsafe(bytes);
  const words = ['the', 'contract', 'clause', 'shall', 'vector', 'embedding', 'party', '2024', 'agreement', 'tenant', 'of', 'and', 'in', '\n', 'section', '4.2'];
  for (let offset = 0; offset < bytes; offset += MiB) {
    const size = Math.min(MiB, bytes - offset);
    if (rand() < 0.5) {
      randomBytes(size).copy(out, offset);
    } else {
      let text = '';
      while (text.length < size) text += words[Math.floor(rand() * words.length)] + (rand() < 0.1 ? '. ' : ' ');
      out.write(text.slice(0, size), offset, 'latin1');
    }
  }
  return out;
}

async function* reads(data) {
  for (let offset = 0; offset < data.length; offset += READ) yield data.subarray(offset, Math.min(offset + READ, data.length));
}

async function gearSizes(data) {
  const sizes = [];
  for await (const chunk of chunkStream(reads(data))) sizes.push(chunk.length);
  return sizes;
}

// buzhash: h = rotl(h, 1) ^ rotl(T[out], WINDOW) ^ T[in], cut where the low log2(avg) bits are 0.
const WINDOW = 64;
const BUZ = (() => {
  const table = new Uint32Array(256);
  const bytes = createHash('sha512').update('buzhash table').digest();
  for (let i = 0; i < 256; i++) table[i] = createHash('sha256').update(bytes).update(String(i)).digest().readUInt32LE(0);
  return table;
})();
function buzhashSizes(data) {
  const sizes = [];
  const mask = avgBytes - 1;
  const shift = WINDOW % 32;
  let start = 0;
  while (start < data.length) {
    const end = Math.min(data.length, start + maxBytes);
    let cut = end;
    // Warm the window up just before the minimum, so the first candidate sees a full window.
    let i = Math.max(start, start + minBytes - WINDOW);
    let h = 0;
    for (let k = i; k < Math.min(end, i + WINDOW); k++) h = ((h << 1) | (h >>> 31)) ^ BUZ[data[k]];
    for (i = i + WINDOW; i < end; i++) {
      const out = BUZ[data[i - WINDOW]];
      h = ((h << 1) | (h >>> 31)) ^ ((out << shift) | (out >>> (32 - shift))) ^ BUZ[data[i]];
      if (i + 1 - start >= minBytes && (h & mask) === 0) {
        cut = i + 1;
        break;
      }
    }
    sizes.push(cut - start);
    start = cut;
  }
  return sizes;
}

function fixedSizes(data) {
  const sizes = [];
  for (let start = 0; start < data.length; start += avgBytes) sizes.push(Math.min(avgBytes, data.length - start));
  return sizes;
}

const algorithms = [
  { name: 'fastcdc gear, normalized (chunkStream)', sizes: gearSizes },
  { name: 'buzhash, 64-byte window', sizes: async (data) => buzhashSizes(data) },
  { name: `fixed ${avgBytes / MiB} MiB`, sizes: async (data) => fixedSizes(data) },
];

function edited(data, places) {
  const parts = [];
  const offsets = Array.from({ length: places }, () => Math.floor(rand() * data.length)).sort((a, b) => a - b);
  let previous = 0;
  for (const offset of offsets) {
    parts.push(data.subarray(previous, offset));
    const count = 1 + Math.floor(rand() * 16);
    if (rand() < 0.5) {
      parts.push(randomBytes(count));
      previous = offset;
    } else {
      previous = Math.min(data.length, offset + count);
    }
  }
  parts.push(data.subarray(previous));
  return Buffer.concat(parts);
}

function chunkHashes(data, sizes) {
  const hashes = [];
  let offset = 0;
  for (const size of sizes) {
    hashes.push([createHash('sha1').update(data.subarray(offset, offset + size)).digest('hex'), size]);
    offset += size;
  }
  return hashes;
}

const data = mixedData(TOTAL);
const dedupBase = data.subarray(0, Math.min(64 * MiB, data.length));
const dedupEdited = edited(dedupBase, 100);
// 100 edits in 64 MiB touch most 1 MiB chunks whatever the chunker: 10 show the resynchronisation better.
const dedupFewEdits = edited(dedupBase, 10);
const rows = [];
for (const algorithm of algorithms) {
  await algorithm.sizes(data.subarray(0, 16 * MiB)); // warm the JIT
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const sizes = await algorithm.sizes(data);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { user, system } = process.cpuUsage(cpu);
  const body = sizes.slice(0, -1);
  const before = new Set(chunkHashes(dedupBase, await algorithm.sizes(dedupBase)).map(([hash]) => hash));
  const reusedAfter = async (edits) => {
    const after = chunkHashes(edits, await algorithm.sizes(edits));
    const reused = after.filter(([hash]) => before.has(hash)).reduce((sum, [, size]) => sum + size, 0);
    return `${((100 * reused) / edits.length).toFixed(1)} %`;
  };
  const scans = !algorithm.name.startsWith('fixed');
  rows.push({
    algorithm: algorithm.name,
    // CPU time, not wall time: the figure must not depend on what else the machine runs.
    'MB/s (cpu)': scans ? Math.round(TOTAL / 1e6 / ((user + system) / 1e6)) : '-',
    'MB/s (wall)': scans ? Math.round(TOTAL / 1e6 / seconds) : '-',
    chunks: sizes.length,
    'mean KiB': Math.round(TOTAL / sizes.length / 1024),
    'min KiB': Math.round(Math.min(...body) / 1024),
    'max KiB': Math.round(Math.max(...body) / 1024),
    'stddev KiB': Math.round(Math.sqrt(body.reduce((s, x) => s + (x - TOTAL / sizes.length) ** 2, 0) / body.length) / 1024),
    'reused, 100 edits': await reusedAfter(dedupEdited),
    'reused, 10 edits': await reusedAfter(dedupFewEdits),
  });
}
console.log(`${TOTAL / MiB} MiB of mixed data (half random, half text-like), ${READ / MiB} MiB reads; dedup on ${dedupBase.length / MiB} MiB with 100 random 1-16 byte inserts/deletes`);
console.table(rows);

// For scale: what the chunk ids cost per byte (the chunker is not the bottleneck of a backup).
for (const [name, make] of [['sha256', () => createHash('sha256')], ['hmac-sha256', () => createHmac('sha256', randomBytes(32))]]) {
  const cpu = process.cpuUsage();
  for (let offset = 0; offset < data.length; offset += MiB) make().update(data.subarray(offset, offset + MiB)).digest();
  const { user, system } = process.cpuUsage(cpu);
  console.log(`${name}: ${Math.round(TOTAL / 1e6 / ((user + system) / 1e6))} MB/s (cpu)`);
}
