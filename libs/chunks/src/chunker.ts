// Content-defined chunking: FastCDC's gear hash with normalized chunking (Xia et al., 2016).
//
// Why this one (bench/chunker.mjs, figures in the README of bench/ and below): BENCH_FIGURES
//
// The gear table and the masks are part of the repository format (CHUNKER_ALGORITHM): other
// values cut other boundaries, and then nothing deduplicates against what is already stored.
import type { ChunkerSettings } from './api.js';

export const CHUNKER_ALGORITHM = 'fastcdc-gear-v1';
export const DEFAULT_CHUNKER: ChunkerSettings = { minBytes: 256 * 1024, avgBytes: 1024 * 1024, maxBytes: 4 * 1024 * 1024 };

/** 256 pseudo-random 32-bit words from a fixed seed (splitmix32): the same table forever. */
export const GEAR: Uint32Array = (() => {
  const table = new Uint32Array(256);
  let state = 0x7469_6465; // "tide"
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e37_79b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85eb_ca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2_ae35);
    table[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return table;
})();

/**
 * Normalized chunking: a stricter mask (2 more bits than the average asks) before the average
 * size and a looser one (2 fewer) after it, which narrows the size distribution around the
 * average. The masks take the hash's HIGH bits: with `h = (h << 1) + gear[byte]` bit k depends on
 * the last k+1 bytes only, so the high bits see the widest window (32 bytes).
 */
function masksFor(settings: ChunkerSettings): { strict: number; loose: number } {
  const bits = Math.round(Math.log2(settings.avgBytes));
  const highBits = (count: number): number => (count <= 0 ? 0 : count >= 32 ? -1 : (~0 << (32 - count)) | 0);
  return { strict: highBits(bits + 2), loose: highBits(bits - 2) };
}

export function validateChunker(settings: ChunkerSettings): void {
  const { minBytes, avgBytes, maxBytes } = settings;
  if (!Number.isInteger(minBytes) || !Number.isInteger(avgBytes) || !Number.isInteger(maxBytes) || minBytes < 64 || minBytes > avgBytes || avgBytes > maxBytes) {
    throw new RangeError(`chunker sizes must be integers with 64 <= min <= avg <= max (got ${minBytes}/${avgBytes}/${maxBytes})`);
  }
}

/**
 * The cut finder, resumable across the pieces of a stream: `length` bytes of the current chunk
 * were seen before, with gear hash `hash`. Kept allocation-free: the hot loop touches only
 * locals and two typed arrays.
 */
export class GearCutter {
  hash = 0;
  length = 0;
  private readonly strict: number;
  private readonly loose: number;

  constructor(private readonly settings: ChunkerSettings = DEFAULT_CHUNKER) {
    validateChunker(settings);
    ({ strict: this.strict, loose: this.loose } = masksFor(settings));
  }

  /** The index in `data` (from `start`) where the current chunk ends (exclusive), or -1 when it continues past `data`. */
  cut(data: Uint8Array, start: number): number {
    const { minBytes, avgBytes, maxBytes } = this.settings;
    const end = data.length;
    const gear = GEAR;
    // Positions are counted from the chunk's start: `base` is where the chunk starts in `data` (may be negative).
    const base = start - this.length;
    let h = this.hash;
    // The first minBytes are never a cut point: they are not even hashed.
    let i = Math.max(start, base + minBytes);
    const strictEnd = Math.min(end, base + avgBytes);
    const mask = this.strict;
    for (; i < strictEnd; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & mask) === 0) return this.found(i + 1);
    }
    const looseEnd = Math.min(end, base + maxBytes);
    const looseMask = this.loose;
    for (; i < looseEnd; i++) {
      h = ((h << 1) + gear[data[i]!]!) | 0;
      if ((h & looseMask) === 0) return this.found(i + 1);
    }
    if (base + maxBytes <= end) return this.found(base + maxBytes);
    this.hash = h;
    this.length = end - base;
    return -1;
  }

  private found(at: number): number {
    this.hash = 0;
    this.length = 0;
    return at;
  }
}

/**
 * Splits a byte stream into content-defined chunks of DEFAULT_CHUNKER (or `settings`) sizes.
 * Holds at most maxBytes plus one read. A chunk inside one read is a view of it (no copy); one
 * that spans reads is copied together once.
 */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, settings: ChunkerSettings = DEFAULT_CHUNKER): AsyncGenerator<Buffer> {
  const cutter = new GearCutter(settings);
  let pending: Buffer[] = [];
  for await (const read of source) {
    const piece = Buffer.isBuffer(read) ? read : Buffer.from(read.buffer, read.byteOffset, read.byteLength);
    let start = 0;
    while (start < piece.length) {
      const at = cutter.cut(piece, start);
      if (at < 0) {
        pending.push(start === 0 ? piece : piece.subarray(start));
        break;
      }
      const tail = piece.subarray(start, at);
      if (pending.length === 0) {
        yield tail;
      } else {
        pending.push(tail);
        const chunk = Buffer.concat(pending);
        pending = [];
        yield chunk;
      }
      start = at;
    }
  }
  if (pending.length > 0) yield pending.length === 1 ? pending[0]! : Buffer.concat(pending);
}
