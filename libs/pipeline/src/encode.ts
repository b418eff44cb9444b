import { PassThrough, pipeline, type Readable } from 'node:stream';
import { ENCRYPTION_ALGORITHM, TidemarkError, type Compression, type PipelineFacts } from '@tidemark/contracts';
import type { EncryptionKey } from './keys.js';
import { compressor, defaultLevel, effectiveCompression } from './compression.js';
import { DEFAULT_CHUNK_SIZE, encryptStage, validateChunkSize } from './chunked-aead.js';
import { meter, type Stage } from './stages.js';

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

type PipelineStep = NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream | Stage;

/**
 * Builds the encode pipeline over `source`. Backpressure flows end to end; memory stays flat.
 * When zstd is requested but its binding did not load, gzip is used and `summary.pipeline` says so.
 */
export function encodeStream(source: Readable, options: EncodeOptions): EncodedStream {
  const output = new PassThrough();
  let steps: PipelineStep[];
  let facts: PipelineFacts;
  const raw = meter({ hash: false });
  const stored = meter({ hash: true });
  try {
    const compression = effectiveCompression(options.compression);
    // A level chosen for zstd means nothing to gzip: a fallback uses gzip's default.
    const level = compression === options.compression ? (options.compressionLevel ?? defaultLevel(compression)) : defaultLevel(compression);
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (options.key !== undefined) validateChunkSize(chunkSize);
    facts = {
      compression,
      ...(level === undefined ? {} : { compressionLevel: level }),
      encryption: options.key === undefined ? null : { algorithm: ENCRYPTION_ALGORITHM, keyId: options.key.id, chunkSize },
    };
    const compress = createCompressor(compression, level);
    steps = [
      source,
      raw.stage,
      ...(compress === null ? [] : [compress]),
      ...(options.key === undefined ? [] : [encryptStage(options.key, chunkSize)]),
      stored.stage,
      output,
    ];
  } catch (error) {
    source.destroy();
    process.nextTick(() => output.destroy(error as Error));
    const summary = Promise.reject(error);
    summary.catch(() => undefined);
    return { output, summary };
  }

  const summary = new Promise<EncodeSummary>((resolve, reject) => {
    output.once('end', () =>
      resolve({ pipeline: facts, rawBytes: raw.bytes(), storedBytes: stored.bytes(), sha256: stored.sha256() }),
    );
    // The node typings cannot express a variable list mixing streams and generator stages.
    (pipeline as unknown as (steps: PipelineStep[], done: (error: Error | null) => void) => void)(steps, (error) => {
      if (error) reject(error);
    });
  });
  // Failures also surface on `output`; a caller that only consumes the stream must not crash the process.
  summary.catch(() => undefined);
  return { output, summary };
}

function createCompressor(compression: Compression, level: number | undefined): NodeJS.ReadWriteStream | null {
  try {
    return compressor(compression, level);
  } catch (error) {
    if (error instanceof TidemarkError) throw error;
    throw new TidemarkError('CONFIG_INVALID', `compression level ${String(level)} is not valid for ${compression}: choose a supported level`);
  }
}
