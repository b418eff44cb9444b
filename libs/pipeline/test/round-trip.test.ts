import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { encodeStream } from '@tidemark/pipeline';
import { COMPRESSIONS, collect, decode, encode, newKey, ringWith, sampleBytes } from './helpers.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('encode then decode returns the source bytes', () => {
  const key = newKey();
  const chunkSize = 1000;
  const sizes = [0, 1, 999, 1000, 1001, 3000, 123_457];

  for (const compression of COMPRESSIONS) {
    for (const encrypted of [false, true]) {
      for (const size of sizes) {
        it(`${compression}, ${encrypted ? 'encrypted' : 'plain'}, ${size} bytes`, async () => {
          const data = sampleBytes(size);
          const encoded = await encode(data, { compression, chunkSize, ...(encrypted ? { key } : {}) });

          expect(encoded.summary.rawBytes).toBe(size);
          expect(encoded.summary.storedBytes).toBe(encoded.stored.length);
          expect(encoded.summary.sha256).toBe(sha256(encoded.stored));
          expect(encoded.summary.pipeline.compression).toBe(compression);
          expect(encoded.summary.pipeline.encryption).toEqual(
            encrypted ? { algorithm: 'aes-256-gcm-chunked-v1', keyId: key.id, chunkSize } : null,
          );
          if (compression === 'none' && !encrypted) expect(encoded.stored.equals(data)).toBe(true);

          const decoded = await decode(encoded.stored, encoded, ringWith(key));
          expect(decoded.error).toBeUndefined();
          expect(decoded.data!.equals(data)).toBe(true);
        });
      }
    }
  }

  it('records the default compression level and the default 1 MiB chunk size', async () => {
    const encoded = await encode(sampleBytes(10), { compression: 'zstd', key });
    expect(encoded.summary.pipeline).toEqual({
      compression: 'zstd',
      compressionLevel: 1,
      encryption: { algorithm: 'aes-256-gcm-chunked-v1', keyId: key.id, chunkSize: 1024 * 1024 },
    });
  });

  it('encrypts the same input differently each time (random nonce prefix)', async () => {
    const data = sampleBytes(5000);
    const first = await encode(data, { compression: 'none', key });
    const second = await encode(data, { compression: 'none', key });
    expect(first.stored.equals(second.stored)).toBe(false);
    expect(first.stored.subarray(0, 4).toString()).toBe('TMKC');
  });
});

describe('encode failures', () => {
  it('rejects the summary and errors the output when the source fails', async () => {
    const source = new Readable({ read() {} });
    const { output, summary } = encodeStream(source, { compression: 'zstd' });
    source.push(sampleBytes(1000));
    setImmediate(() => source.destroy(new Error('dump tool crashed')));
    await expect(collect(output)).rejects.toThrow('dump tool crashed');
    await expect(summary).rejects.toThrow('dump tool crashed');
  });

  it('rejects a chunk size out of range without touching the key', async () => {
    const key = newKey();
    const { output, summary } = encodeStream(Readable.from([Buffer.from('x')]), { compression: 'none', key, chunkSize: 0 });
    await expect(summary).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(collect(output)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('destroys the source when the consumer abandons the output', async () => {
    const source = Readable.from((function* () { for (let i = 0; i < 10_000; i++) yield sampleBytes(65536); })());
    const { output, summary } = encodeStream(source, { compression: 'gzip' });
    for await (const _ of output) break;
    await expect(summary).rejects.toBeDefined();
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.destroyed).toBe(true);
  });
});
