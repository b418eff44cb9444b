import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { CommittedData, KeyRing } from '@tidemark/pipeline';
import { openDecoded, readAll } from '../src/streams.js';

const keys: KeyRing = { current: undefined, get: () => undefined };
const bytes = Buffer.from('committed bytes');
const committed = (sha256 = createHash('sha256').update(bytes).digest('hex')): CommittedData => ({
  pipeline: { compression: 'none', encryption: null },
  data: { sha256, storedBytes: bytes.length },
});

/** A source whose opened streams are kept, to see whether they were released. */
function source() {
  const opened: Readable[] = [];
  return {
    opened,
    openData: (): Promise<Readable> => {
      const stored = Readable.from([bytes], { objectMode: false });
      opened.push(stored);
      return Promise.resolve(stored);
    },
  };
}

describe('openDecoded', () => {
  it('yields the decoded bytes and releases the stored stream at their end', async () => {
    const from = source();
    const decoded = await openDecoded(from, committed(), keys);
    expect(await readAll(decoded)).toEqual(bytes);
    if (!decoded.closed) await once(decoded, 'close');
    expect(from.opened[0]?.destroyed).toBe(true);
  });

  it('fails with the integrity error when the bytes do not match their manifest', async () => {
    const decoded = await openDecoded(source(), committed('0'.repeat(64)), keys);
    await expect(readAll(decoded)).rejects.toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
  });

  it('releases the stored stream when the reader gives up early', async () => {
    const from = source();
    const decoded = await openDecoded(from, committed(), keys);
    decoded.destroy();
    await once(decoded, 'close');
    expect(from.opened[0]?.destroyed).toBe(true);
  });
});
