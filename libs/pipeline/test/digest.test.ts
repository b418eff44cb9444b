import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sha256OfStream } from '../src/digest.js';

describe('sha256OfStream', () => {
  it('hashes and counts what the stream yields, whatever its chunking', async () => {
    const whole = Buffer.from('tidemark wal segment bytes');
    const expected = { sha256: createHash('sha256').update(whole).digest('hex'), bytes: whole.length };
    expect(await sha256OfStream(Readable.from([whole]))).toEqual(expected);
    expect(await sha256OfStream(Readable.from([whole.subarray(0, 5), whole.subarray(5)]))).toEqual(expected);
    expect(await sha256OfStream(Readable.from(['tidemark ', 'wal segment bytes']))).toEqual(expected);
  });

  it('hashes an empty stream', async () => {
    expect(await sha256OfStream(Readable.from([]))).toEqual({ sha256: createHash('sha256').digest('hex'), bytes: 0 });
  });
});
