import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { keyRingOf } from '@tidemark/pipeline';
import { decode, encode, newKey, ringWith, sampleBytes } from './helpers.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const flip = (data: Buffer, at: number): Buffer => {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0x01;
  return copy;
};

const CHUNK = 1000;
const HEADER_BYTES = 4 + 1 + 4 + 2 + 'test-key'.length + 8;
const SEALED_CHUNK = 4 + CHUNK + 16;

describe('decoding detects tampering and damage', () => {
  const key = newKey();
  const data = sampleBytes(5500); // five full chunks and a final partial one

  it('fails with INTEGRITY_AUTH_FAILED under the wrong key with the same id', async () => {
    const encoded = await encode(data, { compression: 'zstd', key, chunkSize: CHUNK });
    const impostor = { id: key.id, key: newKey().key };
    const result = await decode(encoded.stored, encoded, ringWith(impostor));
    expect(result.error).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED' });
    expect(result.received).toBe(0);
    expect(String((result.error as Error).message)).not.toContain(key.key.toString('hex'));
  });

  it('fails with INTEGRITY_AUTH_FAILED on a flipped ciphertext byte, first chunk or last', async () => {
    const encoded = await encode(data, { compression: 'none', key, chunkSize: CHUNK });
    for (const at of [HEADER_BYTES + 4 + 10, encoded.stored.length - 20, encoded.stored.length - 1]) {
      const result = await decode(flip(encoded.stored, at), encoded, ringWith(key));
      expect(result.error).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED' });
    }
  });

  it('releases no plaintext of a chunk whose tag fails', async () => {
    const encoded = await encode(data, { compression: 'none', key, chunkSize: CHUNK });
    const secondChunk = HEADER_BYTES + SEALED_CHUNK + 4 + 3;
    const result = await decode(flip(encoded.stored, secondChunk), encoded, ringWith(key));
    expect(result.error).toMatchObject({ code: 'INTEGRITY_AUTH_FAILED' });
    expect(result.received).toBeLessThanOrEqual(CHUNK);
  });

  it('fails on a flipped header byte: format for magic, key id and chunk size; auth for the nonce', async () => {
    const encoded = await encode(data, { compression: 'gzip', key, chunkSize: CHUNK });
    const cases: Array<[number, string]> = [
      [0, 'INTEGRITY_FORMAT'], // magic
      [4, 'INTEGRITY_FORMAT'], // version
      [8, 'INTEGRITY_FORMAT'], // chunk size
      [12, 'INTEGRITY_FORMAT'], // key id
      [HEADER_BYTES - 2, 'INTEGRITY_AUTH_FAILED'], // nonce prefix: authenticated through the AAD
    ];
    for (const [at, code] of cases) {
      const result = await decode(flip(encoded.stored, at), encoded, ringWith(key));
      expect(result.error, `byte ${at}`).toMatchObject({ code });
    }
  });

  it('fails with INTEGRITY_FORMAT on a flipped byte in compressed, unencrypted data', async () => {
    for (const compression of ['zstd', 'gzip'] as const) {
      const encoded = await encode(sampleBytes(200_000), { compression });
      const result = await decode(flip(encoded.stored, Math.floor(encoded.stored.length / 2)), encoded, keyRingOf(undefined));
      expect(result.error, compression).toMatchObject({ code: 'INTEGRITY_FORMAT' });
    }
  });

  it('fails with INTEGRITY_CHECKSUM_MISMATCH on a flipped raw byte, before the output ends', async () => {
    const encoded = await encode(data, { compression: 'none' });
    const result = await decode(flip(encoded.stored, 100), encoded, keyRingOf(undefined));
    expect(result.error).toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
    // The last piece is held back until the checksum verified: the consumer never got everything.
    expect(result.received).toBeLessThan(data.length);
  });

  it('fails with INTEGRITY_CHECKSUM_MISMATCH when the object is longer than recorded', async () => {
    const encoded = await encode(data, { compression: 'none' });
    const result = await decode(Buffer.concat([encoded.stored, Buffer.from('extra')]), encoded, keyRingOf(undefined));
    expect(result.error).toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
  });
});

describe('decoding detects truncation', () => {
  const key = newKey();
  const data = sampleBytes(5500);

  it('fails with INTEGRITY_TRUNCATED when cut mid-chunk, for every pipeline', async () => {
    for (const compression of ['zstd', 'gzip', 'none'] as const) {
      for (const encrypted of [false, true]) {
        const encoded = await encode(data, { compression, chunkSize: CHUNK, ...(encrypted ? { key } : {}) });
        const cut = encoded.stored.subarray(0, encoded.stored.length - 7);
        const result = await decode(cut, encoded, ringWith(key));
        expect(result.error, `${compression} ${encrypted}`).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
      }
    }
  });

  it('fails with INTEGRITY_TRUNCATED when cut at a chunk boundary even if the manifest matches the cut object', async () => {
    const encoded = await encode(data, { compression: 'none', key, chunkSize: CHUNK });
    const cut = encoded.stored.subarray(0, HEADER_BYTES + 3 * SEALED_CHUNK);
    const result = await decode(cut, encoded, ringWith(key), { sha256: sha256(cut), storedBytes: cut.length });
    expect(result.error).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
    expect(result.received).toBeLessThanOrEqual(3 * CHUNK);
  });

  it('fails with INTEGRITY_TRUNCATED when cut inside the header', async () => {
    const encoded = await encode(data, { compression: 'none', key, chunkSize: CHUNK });
    const cut = encoded.stored.subarray(0, 10);
    const result = await decode(cut, encoded, ringWith(key), { sha256: sha256(cut), storedBytes: cut.length });
    expect(result.error).toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
  });
});

describe('decoding needs the key the artifact names', () => {
  it('fails with ENCRYPTION_KEY_MISSING when the ring lacks the key id', async () => {
    const key = newKey('rotated-2024');
    const encoded = await encode(sampleBytes(3000), { compression: 'zstd', key });
    const result = await decode(encoded.stored, encoded, ringWith(newKey('current-2025')));
    expect(result.error).toMatchObject({ code: 'ENCRYPTION_KEY_MISSING' });
    expect((result.error as Error).message).toContain('rotated-2024');
  });

  it('reads an artifact with an old key kept in the ring after rotation', async () => {
    const old = newKey('rotated-2024');
    const data = sampleBytes(3000);
    const encoded = await encode(data, { compression: 'zstd', key: old });
    const result = await decode(encoded.stored, encoded, keyRingOf(newKey('current-2025'), [old]));
    expect(result.data?.equals(data)).toBe(true);
  });
});
