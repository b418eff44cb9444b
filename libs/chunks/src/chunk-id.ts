// Chunk ids. With encryption they are keyed (HMAC-SHA256 under a key derived from the encryption
// key), so the bucket never reveals the plaintext's hash: anyone could otherwise confirm that a
// known file is stored. Without encryption, plain SHA-256.
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { TidemarkError, type PipelineFacts } from '@tidemark/contracts';
import type { EncryptionKey, KeyRing } from '@tidemark/pipeline';
import type { ChunkId } from './api.js';

export type ChunkIdFunction = (plain: Uint8Array) => ChunkId;

export const CHUNK_ID_PATTERN = /^[0-9a-f]{64}$/;

const idKeys = new WeakMap<Buffer, Buffer>();

/** HKDF-SHA256(encryption key, salt "tidemark", info "tidemark chunk-id v1"), cached per key. */
function idKeyOf(key: EncryptionKey): Buffer {
  let idKey = idKeys.get(key.key);
  if (idKey === undefined) {
    idKey = Buffer.from(hkdfSync('sha256', key.key, 'tidemark', 'tidemark chunk-id v1', 32));
    idKeys.set(key.key, idKey);
  }
  return idKey;
}

export function chunkIdFunction(key: EncryptionKey | undefined): ChunkIdFunction {
  if (key === undefined) return (plain) => createHash('sha256').update(plain).digest('hex');
  const idKey = idKeyOf(key);
  return (plain) => createHmac('sha256', idKey).update(plain).digest('hex');
}

/** The id function a stored blob was named with: keyed by the key it was encrypted with (old keys stay verifiable after a rotation). */
export function chunkIdFunctionFor(pipeline: PipelineFacts, keys: KeyRing): ChunkIdFunction {
  return chunkIdFunction(keyOfPipeline(pipeline, keys));
}

/** The key blobs of `pipeline` were encrypted with, none when unencrypted; ENCRYPTION_KEY_MISSING when the ring lacks it. */
export function keyOfPipeline(pipeline: PipelineFacts, keys: KeyRing): EncryptionKey | undefined {
  if (pipeline.encryption === null) return undefined;
  const key = keys.get(pipeline.encryption.keyId);
  if (key === undefined) {
    throw new TidemarkError('ENCRYPTION_KEY_MISSING', `chunks are encrypted with key ${JSON.stringify(pipeline.encryption.keyId)}, which is not in the key ring: add it to the old keys`);
  }
  return key;
}
