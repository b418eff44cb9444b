import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBytes, encodeBytes, keyRingOf, type DecodeBytesExpectations, type KeyRing } from '@tidemark/pipeline';
import { COMPRESSIONS, decode, encode, newKey, ringWith, sampleBytes } from './helpers.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const flip = (data: Buffer, at: number): Buffer => {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
};
/** The error decodeBytes throws, or undefined. */
const failure = (stored: Buffer, expect: DecodeBytesExpectations, keys: KeyRing): unknown => {
  try {
    decodeBytes(stored, expect, keys);
    return undefined;
  } catch (error) {
    return error;
  }
};

const CHUNK = 1000;
const HEADER_BYTES = 4 + 1 + 4 + 2 + 'test-key'.length + 8;
const SEALED_CHUNK = 4 + CHUNK + 16;
const SIZES = [0, 1, 999, 1000, 1001, 2000, 123_457];

describe('decodeBytes reads what encodeBytes and encodeStream write', () => {
  const key = newKey();
  for (const compression of COMPRESSIONS) {
    for (const encrypted of [false, true]) {
      it(`${compression}, ${encrypted ? 'encrypted' : 'plain'}`, async () => {
        for (const size of SIZES) {
          const data = sampleBytes(size);
          const options = { compression, chunkSize: CHUNK, ...(encrypted ? { key } : {}) };
          const bytes = encodeBytes(data, options);
          expect(decodeBytes(bytes.bytes, { pipeline: bytes.pipeline }, ringWith(key)).equals(data), `encodeBytes ${size}`).toBe(true);
          const streamed = await encode(data, options);
          const expectations = { pipeline: streamed.summary.pipeline, sha256: streamed.summary.sha256, storedBytes: streamed.summary.storedBytes };
          expect(decodeBytes(streamed.stored, expectations, ringWith(key)).equals(data), `encodeStream ${size}`).toBe(true);
        }
      });
    }
  }

  it('reads a large zstd stream (frames without a recorded size, several output buffers) and many reads on one context', async () => {
    const data = Buffer.concat([sampleBytes(3_000_000), Buffer.alloc(2_000_000)]);
    const keys = keyRingOf(undefined);
    const plain = await encode(data, { compression: 'zstd' });
    expect(decodeBytes(plain.stored, { pipeline: plain.summary.pipeline }, keys).equals(data)).toBe(true);
    // A failed read leaves the reused context half-way through a frame; the next read starts clean.
    expect(failure(plain.stored.subarray(0, 1000), { pipeline: plain.summary.pipeline }, keys)).toMatchObject({ code: 'INTEGRITY_FORMAT' });
    expect(decodeBytes(plain.stored, { pipeline: plain.summary.pipeline }, keys).equals(data)).toBe(true);
  });

  it('reads concatenated gzip members as the stream does', () => {
    const joined = Buffer.concat([gzipSync(Buffer.from('one ')), gzipSync(Buffer.from('two'))]);
    expect(decodeBytes(joined, { pipeline: { compression: 'gzip', encryption: null } }, keyRingOf(undefined)).toString()).toBe('one two');
  });
});

describe('decodeBytes detects tampering and damage with decodeStream\'s errors', () => {
  const key = newKey();
  const data = sampleBytes(5500); // five full chunks and a final partial one

  it('INTEGRITY_AUTH_FAILED under the wrong key with the same id', async () => {
    const encoded = await encode(data, { compression: 'zstd', key, chunkSize: CHUNK });
    const impostor = { id: key.id, key: newKey().key };
    const error = failure(encoded.stored, { pipeline: encoded.summary.pipeline }, ringWith(impostor));
    expect(error).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED' });
    expect(String((error as Error).message)).not.toContain(key.key.toString('hex'));
  });

  it('ENCRYPTION_KEY_MISSING when the ring lacks the key id; an old key kept in the ring reads', async () => {
    const old = newKey('rotated-2024');
    const encoded = encodeBytes(data, { compression: 'zstd', key: old });
    const error = failure(encoded.bytes, { pipeline: encoded.pipeline }, ringWith(newKey('current-2025')));
    expect(error).toMatchObject({ code: 'ENCRYPTION_KEY_MISSING' });
    expect((error as Error).message).toContain('rotated-2024');
    expect(decodeBytes(encoded.bytes, { pipeline: encoded.pipeline }, keyRingOf(newKey('current-2025'), [old])).equals(data)).toBe(true);
  });

  it('INTEGRITY_AUTH_FAILED on a flipped ciphertext byte anywhere, for every compression', () => {
    for (const compression of COMPRESSIONS) {
      const encoded = encodeBytes(data, { compression, key, chunkSize: CHUNK });
      for (const at of [HEADER_BYTES + 4 + 1, Math.floor((HEADER_BYTES + encoded.bytes.length) / 2), encoded.bytes.length - 20, encoded.bytes.length - 1]) {
        if (at >= encoded.bytes.length || at < HEADER_BYTES + 4) continue;
        const error = failure(flip(encoded.bytes, at), { pipeline: encoded.pipeline }, ringWith(key));
        expect(error, `${compression} byte ${at}`).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED' });
      }
    }
  });

  it('a flipped header byte: format for magic, version, chunk size and key id; auth for the nonce', async () => {
    const encoded = await encode(data, { compression: 'gzip', key, chunkSize: CHUNK });
    const cases: Array<[number, string]> = [
      [0, 'INTEGRITY_FORMAT'],
      [4, 'INTEGRITY_FORMAT'],
      [8, 'INTEGRITY_FORMAT'],
      [12, 'INTEGRITY_FORMAT'],
      [HEADER_BYTES - 2, 'INTEGRITY_AUTH_FAILED'],
    ];
    for (const [at, code] of cases) {
      const damaged = flip(encoded.stored, at);
      const error = failure(damaged, { pipeline: encoded.summary.pipeline }, ringWith(key));
      expect(error, `byte ${at}`).toMatchObject({ code });
      // The same verdict as the stream's.
      expect((await decode(damaged, encoded, ringWith(key))).error, `stream, byte ${at}`).toMatchObject({ code });
    }
  });

  it('INTEGRITY_FORMAT on a flipped byte in compressed, unencrypted data', async () => {
    for (const compression of ['zstd', 'gzip'] as const) {
      for (const encoded of [await encode(sampleBytes(200_000), { compression }), encodeBytes(sampleBytes(200_000), { compression })]) {
        const stored = 'stored' in encoded ? encoded.stored : encoded.bytes;
        const pipeline = 'stored' in encoded ? encoded.summary.pipeline : encoded.pipeline;
        const error = failure(flip(stored, Math.floor(stored.length / 2)), { pipeline }, keyRingOf(undefined));
        expect(error, compression).toMatchObject({ code: 'INTEGRITY_FORMAT' });
      }
    }
  });

  it('INTEGRITY_CHECKSUM_MISMATCH on a flipped raw byte when the sha256 is given, or bytes beyond the recorded size', () => {
    const encoded = encodeBytes(data, { compression: 'none' });
    const expectations = { pipeline: encoded.pipeline, sha256: sha256(encoded.bytes), storedBytes: encoded.bytes.length };
    expect(failure(flip(encoded.bytes, 100), expectations, keyRingOf(undefined))).toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
    expect(failure(Buffer.concat([encoded.bytes, Buffer.from('extra')]), expectations, keyRingOf(undefined))).toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
  });

  it('INTEGRITY_FORMAT on bytes appended after the final encrypted chunk', () => {
    const encoded = encodeBytes(data, { compression: 'none', key, chunkSize: CHUNK });
    const extra = encodeBytes(sampleBytes(10), { compression: 'none', key, chunkSize: CHUNK }).bytes.subarray(HEADER_BYTES);
    const error = failure(Buffer.concat([encoded.bytes, extra]), { pipeline: encoded.pipeline }, ringWith(key));
    expect(error).toMatchObject({ code: 'INTEGRITY_FORMAT' });
  });

  it('INTEGRITY_FORMAT past maxPlainBytes (a frame that expands beyond its bound)', () => {
    for (const compression of ['zstd', 'gzip'] as const) {
      const encoded = encodeBytes(Buffer.alloc(4 * 1024 * 1024), { compression });
      expect(decodeBytes(encoded.bytes, { pipeline: encoded.pipeline, maxPlainBytes: 4 * 1024 * 1024 }, keyRingOf(undefined)).length).toBe(4 * 1024 * 1024);
      const error = failure(encoded.bytes, { pipeline: encoded.pipeline, maxPlainBytes: 1024 * 1024 }, keyRingOf(undefined));
      expect(error, compression).toMatchObject({ code: 'INTEGRITY_FORMAT' });
    }
  });
});

describe('decodeBytes detects truncation', () => {
  const key = newKey();
  const data = sampleBytes(5500);

  it('INTEGRITY_TRUNCATED when shorter than the recorded size, for every pipeline', () => {
    for (const compression of COMPRESSIONS) {
      for (const encrypted of [false, true]) {
        const encoded = encodeBytes(data, { compression, chunkSize: CHUNK, ...(encrypted ? { key } : {}) });
        const cut = encoded.bytes.subarray(0, encoded.bytes.length - 7);
        const error = failure(cut, { pipeline: encoded.pipeline, storedBytes: encoded.bytes.length }, ringWith(key));
        expect(error, `${compression} ${encrypted}`).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
      }
    }
  });

  it('without a recorded size: TRUNCATED mid encrypted chunk, at a chunk boundary and inside the header; FORMAT mid compressed frame', () => {
    const encoded = encodeBytes(data, { compression: 'none', key, chunkSize: CHUNK });
    for (const cut of [encoded.bytes.length - 7, HEADER_BYTES + 3 * SEALED_CHUNK, HEADER_BYTES + 3 * SEALED_CHUNK + 2, HEADER_BYTES, 10]) {
      const error = failure(encoded.bytes.subarray(0, cut), { pipeline: encoded.pipeline }, ringWith(key));
      expect(error, `cut at ${cut}`).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
    }
    for (const compression of ['zstd', 'gzip'] as const) {
      const compressed = encodeBytes(sampleBytes(200_000), { compression });
      const error = failure(compressed.bytes.subarray(0, compressed.bytes.length - 3), { pipeline: compressed.pipeline }, keyRingOf(undefined));
      expect(error, compression).toMatchObject({ code: 'INTEGRITY_FORMAT' });
    }
  });
});
