import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through stage that counts and hashes what flows through it (snapshot files are checksummed as written). */
export function hashingTap(): { readonly tap: Transform; result(): { size: number; checksum: string } } {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  return { tap, result: () => ({ size, checksum: hash.digest('hex') }) };
}
