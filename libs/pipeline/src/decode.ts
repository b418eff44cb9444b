import type { Readable } from 'node:stream';
import type { PipelineFacts } from '@tidemark/contracts';
import type { KeyRing } from './keys.js';

export interface DecodeExpectations {
  readonly pipeline: PipelineFacts;
  /** sha256 of the stored bytes, from the manifest. */
  readonly sha256: string;
  /** Stored size, from the manifest: a short read fails with INTEGRITY_TRUNCATED. */
  readonly storedBytes: number;
}

/**
 * Turns stored bytes back into the source bytes. The returned stream errors with a TidemarkError:
 * ENCRYPTION_KEY_MISSING (key id not in the ring), INTEGRITY_AUTH_FAILED (GCM tag: wrong key or
 * modified bytes), INTEGRITY_TRUNCATED (short object or missing final chunk),
 * INTEGRITY_CHECKSUM_MISMATCH (sha256 at the end), INTEGRITY_FORMAT (bad header / decompression).
 * Decrypted plaintext is released only after its chunk's tag has verified.
 */
export declare function decodeStream(stored: Readable, expect: DecodeExpectations, keys: KeyRing): Readable;
