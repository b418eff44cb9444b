import { createHash } from 'node:crypto';

/** The sha256 (hex) and byte count of everything `stream` yields, hashed as it flows (nothing is held). */
export async function sha256OfStream(stream: AsyncIterable<Uint8Array | string>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    const piece = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    hash.update(piece);
    bytes += piece.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
