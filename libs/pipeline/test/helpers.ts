import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { Compression } from '@tidemark/contracts';
import { decodeStream, encodeStream, keyRingOf, type EncodeSummary, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';

export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

export const newKey = (id = 'test-key'): EncryptionKey => ({ id, key: randomBytes(32) });

/** Semi-compressible bytes: text with random words, deterministic per size. */
export function sampleBytes(size: number): Buffer {
  const words = ['alpha', 'vector', 'tide', 'mark', 'backup', 'restore', 'row', 'embedding', '0.1234', '\n'];
  const out = Buffer.alloc(size);
  let seed = size + 7;
  for (let i = 0; i < size; ) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const word = words[seed % words.length]!;
    i += out.write(word + ' ', i);
  }
  return out;
}

/** Feeds `data` in uneven pieces so stage boundaries never line up with chunk boundaries. */
export function unevenSource(data: Buffer, pieceSizes: readonly number[] = [1, 7, 4096, 333, 65536, 100_003]): Readable {
  const pieces: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = pieceSizes[i % pieceSizes.length]!;
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return Readable.from(pieces);
}

export async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

export interface Encoded {
  readonly stored: Buffer;
  readonly summary: EncodeSummary;
}

export async function encode(data: Buffer, options: Parameters<typeof encodeStream>[1]): Promise<Encoded> {
  const { output, summary } = encodeStream(unevenSource(data), options);
  const stored = await collect(output);
  return { stored, summary: await summary };
}

/** Decodes `stored` against the manifest facts of `encoded` (overridable) and returns the bytes or the error. */
export async function decode(
  stored: Buffer,
  encoded: Encoded,
  keys: KeyRing,
  override: { sha256?: string; storedBytes?: number } = {},
): Promise<{ data?: Buffer; error?: unknown; received: number }> {
  const stream = decodeStream(
    unevenSource(stored),
    {
      pipeline: encoded.summary.pipeline,
      sha256: override.sha256 ?? encoded.summary.sha256,
      storedBytes: override.storedBytes ?? encoded.summary.storedBytes,
    },
    keys,
  );
  let received = 0;
  const parts: Buffer[] = [];
  try {
    for await (const part of stream) {
      received += (part as Buffer).length;
      parts.push(part as Buffer);
    }
    return { data: Buffer.concat(parts), received };
  } catch (error) {
    return { error, received };
  }
}

export const ringWith = (...keys: EncryptionKey[]): KeyRing => keyRingOf(keys[0], keys.slice(1));
