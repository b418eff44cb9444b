import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { decodeStream, encodeBytes } from '@tidemark/pipeline';
import { COMPRESSIONS, collect, newKey, ringWith, sampleBytes } from './helpers.js';

describe('encodeBytes: one buffer in the stream formats, read back by decodeStream', () => {
  const key = newKey();
  const chunkSize = 1000;
  for (const compression of COMPRESSIONS) {
    for (const encrypted of [false, true]) {
      it(`${compression}, ${encrypted ? 'encrypted' : 'plain'}`, async () => {
        for (const size of [0, 1, 999, 1000, 1001, 2000, 123_457]) {
          const data = sampleBytes(size);
          const { bytes, pipeline } = encodeBytes(data, { compression, chunkSize, ...(encrypted ? { key } : {}) });
          expect(pipeline.encryption).toEqual(encrypted ? { algorithm: 'aes-256-gcm-chunked-v1', keyId: key.id, chunkSize } : null);
          const sha256 = createHash('sha256').update(bytes).digest('hex');
          const decoded = await collect(decodeStream(Readable.from([bytes], { objectMode: false }), { pipeline, sha256, storedBytes: bytes.length }, ringWith(key)));
          expect(decoded.equals(data), `${size} bytes`).toBe(true);
        }
      });
    }
  }

  it('an invalid level is CONFIG_INVALID', () => {
    expect(() => encodeBytes(sampleBytes(10), { compression: 'gzip', compressionLevel: 42 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }) as Error);
  });
});
