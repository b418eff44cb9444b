// A blob: one chunk through the artifact pipeline (compressed, then encrypted with authenticated
// chunks), so chunks get exactly the protection whole artifacts get.
import { TidemarkError, type Compression, type PipelineFacts } from '@tidemark/contracts';
import { decodeBytes, encodeBytes, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';
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
 * The plaintext of a stored blob, checked against its id. The blob was read whole, so it is decoded
 * at once (decodeBytes, no stream per chunk) and without a sha256 of the stored bytes: the proofs
 * are the GCM tags, zstd's frame checksum and the chunk id checked after decoding. `reuse` as in
 * decodeBytes.
 */
export function decodeBlob(stored: Buffer, pipeline: PipelineFacts, keys: KeyRing, id: ChunkId, reuse: 'owned' | 'scratch' = 'owned'): Buffer {
  const plain = decodeBytes(stored, { pipeline, storedBytes: stored.length }, keys, reuse);
  if (chunkIdFunctionFor(pipeline, keys)(plain) !== id) {
    throw new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', `chunk ${id} decodes to other bytes than its id names: the pack or the index is corrupt; run the verifier and rebuild the index`);
  }
  return plain;
}
