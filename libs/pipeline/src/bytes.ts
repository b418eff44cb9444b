// One buffer through the same formats as encodeStream, without a stream pipeline. The chunk
// repository encodes every chunk (hundreds of thousands of small files) on its own, and a stream
// pipeline per chunk (stages, a zstd context and its thread) cost milliseconds each: more than
// compressing the chunk. decodeStream reads the result like any encoded stream.
import { ENCRYPTION_ALGORITHM, TidemarkError, type PipelineFacts } from '@tidemark/contracts';
import { compressBytes, defaultLevel, effectiveCompression } from './compression.js';
import { DEFAULT_CHUNK_SIZE, encryptBytes } from './chunked-aead.js';
import type { EncodeOptions } from './encode.js';

export interface EncodedBytes {
  readonly bytes: Buffer;
  readonly pipeline: PipelineFacts;
}

export function encodeBytes(plain: Uint8Array, options: EncodeOptions): EncodedBytes {
  const compression = effectiveCompression(options.compression);
  const level = compression === options.compression ? (options.compressionLevel ?? defaultLevel(compression)) : defaultLevel(compression);
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  let compressed: Buffer;
  try {
    // Encryption consumes the compressed bytes at once, so they may stay in the compressor's scratch.
    compressed = compressBytes(compression, level, plain, options.key === undefined ? 'owned' : 'scratch');
  } catch (error) {
    if (error instanceof TidemarkError) throw error;
    throw new TidemarkError('CONFIG_INVALID', `compression level ${String(level)} is not valid for ${compression}: choose a supported level`);
  }
  const pipeline: PipelineFacts = {
    compression,
    ...(level === undefined ? {} : { compressionLevel: level }),
    encryption: options.key === undefined ? null : { algorithm: ENCRYPTION_ALGORITHM, keyId: options.key.id, chunkSize },
  };
  return { bytes: options.key === undefined ? compressed : encryptBytes(options.key, chunkSize, compressed), pipeline };
}
