import { createHash } from 'node:crypto';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import { TidemarkError, type PipelineFacts } from '@tidemark/contracts';
import type { KeyRing } from './keys.js';
import { DecompressedTooLarge, decompressBytes, decompressor, MAX_DECOMPRESSED_BYTES, ZstdDataError } from './compression.js';
import { decryptBytes, decryptStage, keyMissing } from './chunked-aead.js';
import { meter, type Meter, type Stage } from './stages.js';

export interface DecodeExpectations {
  readonly pipeline: PipelineFacts;
  /** sha256 of the stored bytes, from the manifest. */
  readonly sha256: string;
  /** Stored size, from the manifest: a short read fails with INTEGRITY_TRUNCATED. */
  readonly storedBytes: number;
}

type PipelineStep = NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream | Stage;

/**
 * Turns stored bytes back into the source bytes. The returned stream errors with a TidemarkError:
 * ENCRYPTION_KEY_MISSING (key id not in the ring), INTEGRITY_AUTH_FAILED (GCM tag: wrong key or
 * modified bytes), INTEGRITY_TRUNCATED (short object or missing final chunk),
 * INTEGRITY_CHECKSUM_MISMATCH (sha256 at the end), INTEGRITY_FORMAT (bad header / decompression).
 * Decrypted plaintext is released only after its chunk's tag has verified.
 *
 * Where several problems coincide the most specific one wins: a short object is reported as
 * truncated, a failed tag or a decompression error as such, and the checksum is the last word.
 * The final piece of output is held back until the checksum has verified, so a consumer (say
 * pg_restore) never sees a clean end of unverified data.
 */
export function decodeStream(stored: Readable, expect: DecodeExpectations, keys: KeyRing): Readable {
  // A few MiB of decoded bytes buffered ahead let decoding overlap the consumer's writes (restores extract to disk).
  const output = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const input = meter({ hash: true });
  const classify = (error: unknown): unknown => {
    if (input.finished() && input.bytes() < expect.storedBytes) return truncated(input, expect);
    return error;
  };

  let steps: PipelineStep[];
  try {
    const encryption = expect.pipeline.encryption;
    if (encryption !== null && keys.get(encryption.keyId) === undefined) throw keyMissing(encryption.keyId);
    const decompress = decompressor(expect.pipeline.compression, expect.storedBytes);
    steps = [
      stored,
      input.stage,
      lengthGuard(input, expect),
      ...(encryption === null
        ? []
        : [mapErrors(decryptStage({ keys, expectedKeyId: encryption.keyId, expectedChunkSize: encryption.chunkSize }), classify)]),
      ...(decompress === null ? [] : [typeof decompress === 'function' ? mapErrors(decompress, (error) => classify(decompressionError(error))) : mapStreamErrors(decompress, classify)]),
      verifyBeforeEnd(input, expect),
      output,
    ];
  } catch (error) {
    stored.destroy();
    process.nextTick(() => output.destroy(error as Error));
    return output;
  }
  // Errors reach the consumer through `output`, which pipeline destroys with the first failure.
  (pipeline as unknown as (steps: PipelineStep[], done: (error: Error | null) => void) => void)(steps, () => undefined);
  return output;
}

export interface DecodeBytesExpectations {
  readonly pipeline: PipelineFacts;
  /** sha256 of the stored bytes, when a manifest records one (a blob read whole needs none: its tags, frame checksum and id prove it). */
  readonly sha256?: string | undefined;
  /** Stored size, when recorded: a shorter buffer fails with INTEGRITY_TRUNCATED, a longer one with INTEGRITY_CHECKSUM_MISMATCH. */
  readonly storedBytes?: number | undefined;
  /** Bound on the decoded size (default 1 GiB): past it INTEGRITY_FORMAT, so a crafted frame cannot exhaust memory. */
  readonly maxPlainBytes?: number | undefined;
}

/**
 * decodeStream for one stored object already in memory, synchronously: the same formats, checks
 * and TidemarkError codes, without a stream pipeline per object (restores decode thousands of
 * chunks a second). Decryption runs on node:crypto at once, zstd on one reused context, gzip on
 * zlib.gunzipSync. Where several problems coincide the most specific wins, as in decodeStream:
 * a short object is truncated, a longer one a checksum mismatch, then the tags and the
 * decompression, and the sha256 (when given) is the last word. With `reuse: 'scratch'` the result
 * may be a view of a buffer the next call on this thread overwrites (see decompressBytes).
 */
export function decodeBytes(stored: Buffer, expect: DecodeBytesExpectations, keys: KeyRing, reuse: 'owned' | 'scratch' = 'owned'): Buffer {
  const encryption = expect.pipeline.encryption;
  if (encryption !== null && keys.get(encryption.keyId) === undefined) throw keyMissing(encryption.keyId);
  if (expect.storedBytes !== undefined && stored.length > expect.storedBytes) throw tooLong(expect.storedBytes);
  if (expect.storedBytes !== undefined && stored.length < expect.storedBytes) throw truncatedAt(stored.length, expect.storedBytes);
  let compressed = stored;
  if (encryption !== null) {
    const plaintexts = decryptBytes({ keys, expectedKeyId: encryption.keyId, expectedChunkSize: encryption.chunkSize }, stored);
    compressed = plaintexts.length === 1 ? plaintexts[0]! : Buffer.concat(plaintexts);
  }
  let plain: Buffer;
  try {
    plain = decompressBytes(expect.pipeline.compression, compressed, expect.maxPlainBytes ?? MAX_DECOMPRESSED_BYTES, reuse);
  } catch (error) {
    if (error instanceof DecompressedTooLarge) {
      throw new TidemarkError('INTEGRITY_FORMAT', `${error.message}, more than it may: the stored object is corrupt; use another artifact`);
    }
    throw decompressionError(error);
  }
  if (expect.sha256 !== undefined) {
    const actual = createHash('sha256').update(stored).digest('hex');
    if (actual !== expect.sha256.toLowerCase()) throw checksumMismatch(actual, expect.sha256);
  }
  return plain;
}

/** What a committed manifest (an artifact's or a WAL file's) records about its stored bytes. */
export interface CommittedData {
  readonly pipeline: PipelineFacts;
  readonly data: { readonly sha256: string; readonly storedBytes: number };
}

/** decodeStream with the expectations a committed manifest records. */
export function decodeCommitted(stored: Readable, committed: CommittedData, keys: KeyRing): Readable {
  return decodeStream(stored, { pipeline: committed.pipeline, sha256: committed.data.sha256, storedBytes: committed.data.storedBytes }, keys);
}

/** Fails as soon as more bytes arrive than the manifest recorded, rather than after reading them all. */
function lengthGuard(input: Meter, expect: DecodeExpectations): Stage {
  return async function* guard(source) {
    for await (const piece of source) {
      if (input.bytes() > expect.storedBytes) {
        throw tooLong(expect.storedBytes);
      }
      yield piece as Buffer;
    }
  };
}

/** Passes output through one piece behind, and releases the last piece only once size and sha256 match. */
function verifyBeforeEnd(input: Meter, expect: DecodeExpectations): Stage {
  return async function* verify(source) {
    let held: Buffer | undefined;
    for await (const piece of source) {
      if (held !== undefined) yield held;
      held = piece as Buffer;
    }
    if (input.bytes() < expect.storedBytes) throw truncated(input, expect);
    if (input.sha256() !== expect.sha256.toLowerCase()) {
      throw checksumMismatch(input.sha256(), expect.sha256);
    }
    if (held !== undefined) yield held;
  };
}

function truncated(input: Meter, expect: DecodeExpectations): TidemarkError {
  return truncatedAt(input.bytes(), expect.storedBytes);
}

function truncatedAt(bytes: number, storedBytes: number): TidemarkError {
  return new TidemarkError(
    'INTEGRITY_TRUNCATED',
    `the stored object ends after ${bytes} of ${storedBytes} bytes: the upload or download was cut short; retry or use another artifact`,
  );
}

function tooLong(storedBytes: number): TidemarkError {
  return new TidemarkError(
    'INTEGRITY_CHECKSUM_MISMATCH',
    `the stored object is longer than the ${storedBytes} bytes its manifest records: it was overwritten or the manifest is wrong; use another artifact`,
  );
}

function checksumMismatch(actual: string, expected: string): TidemarkError {
  return new TidemarkError(
    'INTEGRITY_CHECKSUM_MISMATCH',
    `the stored object's sha256 ${actual} differs from the manifest's ${expected}: the bytes were modified; use another artifact`,
  );
}

function decompressionError(error: unknown): unknown {
  if (error instanceof ZstdDataError && error.endedMidFrame) {
    return new TidemarkError('INTEGRITY_FORMAT', 'the compressed data ends inside a zstd frame: the stored object is corrupt; use another artifact');
  }
  // Errors from upstream (the download, decryption) pass through unchanged.
  if (!(error instanceof ZstdDataError) && !isZlibError(error)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new TidemarkError('INTEGRITY_FORMAT', `decompression failed (${detail}): the stored object is corrupt; use another artifact`, { cause: error });
}

function mapErrors(stage: Stage, map: (error: unknown) => unknown): Stage {
  return async function* mapped(source) {
    try {
      yield* stage(source);
    } catch (error) {
      throw map(error);
    }
  };
}

/**
 * zlib streams fail with their own errors (code Z_DATA_ERROR, Z_BUF_ERROR, ...). We translate
 * those at the source, in _destroy, so the error pipeline passes on is already the mapped one;
 * teardown errors from elsewhere (a consumer closing early) pass untouched.
 */
function mapStreamErrors(stream: NodeJS.ReadWriteStream, classify: (error: unknown) => unknown): NodeJS.ReadWriteStream {
  const target = stream as unknown as { _destroy(error: Error | null, done: (error?: Error | null) => void): void };
  const original = target._destroy.bind(target);
  target._destroy = (error, done) => {
    original(isZlibError(error) ? (classify(decompressionError(error)) as Error) : error, done);
  };
  return stream;
}

function isZlibError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
