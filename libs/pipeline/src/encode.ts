import type { Readable } from 'node:stream';
import type { Compression, PipelineFacts } from '@tidemark/contracts';
import type { EncryptionKey } from './keys.js';

export interface EncodeOptions {
  readonly compression: Compression;
  readonly compressionLevel?: number;
  /** Encrypt with this key (AES-256-GCM in authenticated chunks) when given. */
  readonly key?: EncryptionKey;
  /** Plaintext bytes per authenticated chunk; default 1 MiB. */
  readonly chunkSize?: number;
}

export interface EncodeSummary {
  readonly pipeline: PipelineFacts;
  readonly rawBytes: number;
  readonly storedBytes: number;
  /** sha256 (hex) of the stored (output) bytes. */
  readonly sha256: string;
}

export interface EncodedStream {
  /** The stored bytes; pipe into storage. Errors from the source propagate here. */
  readonly output: Readable;
  /** Resolves once `output` has ended, with sizes and checksum. */
  readonly summary: Promise<EncodeSummary>;
}

/** Builds the encode pipeline over `source`. Backpressure flows end to end; memory stays flat. */
export declare function encodeStream(source: Readable, options: EncodeOptions): EncodedStream;
