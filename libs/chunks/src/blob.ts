// A blob: one chunk through the artifact pipeline (compressed, then encrypted with authenticated
// chunks), so chunks get exactly the protection whole artifacts get.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { TidemarkError, type Compression, type PipelineFacts } from '@tidemark/contracts';
import { decodeStream, encodeBytes, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';
import type { ChunkId } from './api.js';
import { chunkIdFunctionFor } from './chunk-id.js';

export interface BlobEncoding {
  readonly compression: Compression;
  readonly compressionLevel?: number | undefined;
  readonly key: EncryptionKey | undefined;
}

export interface EncodedBlob {
  readonly bytes: Buffer;
  readonly pipeline: PipelineFacts;
}

/** The pipeline's formats without a stream per chunk (encodeBytes): a backup of small files encodes one blob per file. */
export function encodeBlob(plain: Uint8Array, encoding: BlobEncoding): EncodedBlob {
  return encodeBytes(plain, {
    compression: encoding.compression,
    ...(encoding.compressionLevel === undefined ? {} : { compressionLevel: encoding.compressionLevel }),
    ...(encoding.key === undefined ? {} : { key: encoding.key }),
  });
}

/**
 * The plaintext of a stored blob, checked against its id. The blob was read whole, so its sha256
 * for decodeStream is taken here: the real proofs are the GCM tags, zstd's frame checksum and the
 * chunk id checked after decoding.
 */
export async function decodeBlob(stored: Buffer, pipeline: PipelineFacts, keys: KeyRing, id: ChunkId): Promise<Buffer> {
  const sha256 = createHash('sha256').update(stored).digest('hex');
  const decoded = decodeStream(Readable.from([stored], { objectMode: false }), { pipeline, sha256, storedBytes: stored.length }, keys);
  const pieces: Buffer[] = [];
  for await (const piece of decoded) pieces.push(piece as Buffer);
  const plain = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  if (chunkIdFunctionFor(pipeline, keys)(plain) !== id) {
    throw new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', `chunk ${id} decodes to other bytes than its id names: the pack or the index is corrupt; run the verifier and rebuild the index`);
  }
  return plain;
}
