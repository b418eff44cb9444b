// Compression stages. zstd comes from the `zstd-napi` native binding; when that binding cannot
// load (no prebuilt for the platform, a broken install) we fall back to gzip from node:zlib, so
// backups keep running, just larger. TIDEMARK_ZSTD=off forces the fallback (tests, interop).
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';
import { createGunzip, createGzip, gunzipSync, gzipSync, constants as zlibConstants } from 'node:zlib';
import { TidemarkError, type Compression } from '@tidemark/contracts';
import { toBuffer, type Stage } from './stages.js';
import { zstdWorkerDecompressStage } from './zstd-worker.js';

interface ZstdDecompressContext {
  decompressStream(dst: Uint8Array, src: Uint8Array): [remaining: number, produced: number, consumed: number];
  /** ZSTD_DCtx_reset (ResetDirective.sessionOnly drops a half-read frame, keeps parameters). */
  reset(directive: number): void;
}

interface ZstdBinding {
  readonly CompressStream: new (parameters: { compressionLevel?: number; checksumFlag?: boolean; nbWorkers?: number }) => Transform;
  readonly CCtx: new () => ZstdCCtx;
  readonly CParameter: { readonly compressionLevel: number; readonly checksumFlag: number; readonly hashLog: number };
  readonly compressBound: (bytes: number) => number;
  readonly DCtx: new () => ZstdDecompressContext;
  readonly dStreamOutSize: () => number;
  /** The content size a frame header records, or null when the frame does not record it. */
  readonly getFrameContentSize: (frame: Uint8Array) => number | null;
  readonly ResetDirective: { readonly sessionOnly: number };
}

// Level 1: on pg_dump output (bench/pg-logical-backup.mjs) it was 20 % faster than level 3 and no larger.
export const ZSTD_DEFAULT_LEVEL = 1;
/** Background compression threads per stream (TIDEMARK_ZSTD_WORKERS, default 1; 0 compresses on the event loop). */
export const ZSTD_WORKERS = Number(process.env.TIDEMARK_ZSTD_WORKERS ?? 1);
export const GZIP_DEFAULT_LEVEL = 6;

let zstdBinding: ZstdBinding | null | undefined;

function loadZstd(): ZstdBinding | null {
  if (zstdBinding !== undefined) return zstdBinding;
  if (process.env['TIDEMARK_ZSTD'] === 'off') return (zstdBinding = null);
  try {
    const require = createRequire(import.meta.url);
    const streams = require('zstd-napi') as Pick<ZstdBinding, 'CompressStream'>;
    const native = require('zstd-napi/binding.js') as Omit<ZstdBinding, 'CompressStream'>;
    zstdBinding = {
      CompressStream: streams.CompressStream,
      CCtx: native.CCtx,
      CParameter: native.CParameter,
      compressBound: native.compressBound,
      DCtx: native.DCtx,
      dStreamOutSize: native.dStreamOutSize,
      getFrameContentSize: native.getFrameContentSize,
      ResetDirective: native.ResetDirective,
    };
  } catch {
    zstdBinding = null;
  }
  return zstdBinding;
}

/** True when the zstd native binding loaded. */
export function zstdAvailable(): boolean {
  return loadZstd() !== null;
}

/** zstd when available, otherwise gzip. */
export function defaultCompression(): Compression {
  return zstdAvailable() ? 'zstd' : 'gzip';
}

/** What will actually be used for a requested compression (zstd degrades to gzip without the binding). */
export function effectiveCompression(requested: Compression): Compression {
  return requested === 'zstd' && !zstdAvailable() ? 'gzip' : requested;
}

export function defaultLevel(compression: Compression): number | undefined {
  if (compression === 'zstd') return ZSTD_DEFAULT_LEVEL;
  if (compression === 'gzip') return GZIP_DEFAULT_LEVEL;
  return undefined;
}

/** A compressing stage, or null for `none`. `compression` must already be effective. */
export function compressor(compression: Compression, level: number | undefined): Transform | null {
  if (compression === 'none') return null;
  if (compression === 'gzip') return createGzip({ level: level ?? GZIP_DEFAULT_LEVEL });
  const zstd = loadZstd();
  if (zstd === null) throw zstdMissing();
  // The frame checksum lets decoding reject corrupted plaintext even without encryption.
  // One zstd worker thread compresses in the background, so the event loop stays free for
  // encryption, hashing and I/O while pg_dump streams (libzstd is built with ZSTD_MULTITHREAD).
  return new zstd.CompressStream({ compressionLevel: level ?? ZSTD_DEFAULT_LEVEL, checksumFlag: true, nbWorkers: ZSTD_WORKERS });
}

interface ZstdCCtx {
  setParameter(parameter: number, value: number): void;
  /** Compresses `src` into `dst` (at least compressBound(src) long) as one frame; returns the frame's length. */
  compress2(dst: Uint8Array, src: Uint8Array): number;
}

/**
 * Level 1's match table, larger than its default for inputs this size. On the files benchmark's text
 * in 1 MiB buffers (2026-12-08, 2-core machine, two runs): default 212 MiB/s for 41.4 % of the size;
 * hashLog 15: 202 MiB/s for 38.3 % (16: 15 % slower for 36.8 %; level 2: 36.0 % at 78 % of level
 * 1's speed). Only the compressor's search changes: any zstd decoder reads the frames.
 */
const LEVEL_1_HASH_LOG = 15;

/** One context per level, reused: creating one per small buffer cost more than compressing it. */
const zstdContexts = new Map<number, ZstdCCtx>();
/**
 * Where compressBytes writes before the result is copied out or encrypted: a buffer per
 * compressed chunk (compressBound long, then trimmed by a copy) was most of what a backup
 * allocated, and the garbage collector's share of its time followed.
 */
let zstdScratch = Buffer.alloc(0);

/**
 * One buffer compressed at once, in the same format the compressing stage writes (a zstd frame
 * with its checksum, or gzip). `compression` must already be effective. With `reuse: 'scratch'`
 * a zstd result is a view of a buffer the next call overwrites: the caller consumes it first.
 */
export function compressBytes(compression: Compression, level: number | undefined, plain: Uint8Array, reuse: 'owned' | 'scratch' = 'owned'): Buffer {
  if (compression === 'none') return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  if (compression === 'gzip') return gzipSync(plain, { level: level ?? GZIP_DEFAULT_LEVEL });
  const zstd = loadZstd();
  if (zstd === null) throw zstdMissing();
  const chosen = level ?? ZSTD_DEFAULT_LEVEL;
  let context = zstdContexts.get(chosen);
  if (context === undefined) {
    context = new zstd.CCtx();
    context.setParameter(zstd.CParameter.compressionLevel, chosen);
    context.setParameter(zstd.CParameter.checksumFlag, 1);
    if (chosen === 1) context.setParameter(zstd.CParameter.hashLog, LEVEL_1_HASH_LOG);
    zstdContexts.set(chosen, context);
  }
  const bound = zstd.compressBound(plain.byteLength);
  if (zstdScratch.length < bound) zstdScratch = Buffer.allocUnsafeSlow(bound);
  const compressed = zstdScratch.subarray(0, context.compress2(zstdScratch, plain));
  return reuse === 'scratch' ? compressed : Buffer.from(compressed);
}

/**
 * Where decompressBytes(..., 'scratch') writes: a fresh output per blob (page faults to fill, a
 * collection to free) halved the speed of a restore's decompression, text and incompressible alike.
 */
let zstdOutputScratch = Buffer.alloc(0);

/** One decompression context, reused (reset per buffer): like compressBytes, a context per small buffer cost more than the work. */
let zstdDecompressContext: ZstdDecompressContext | undefined;

/**
 * One stored buffer decompressed at once: what the decompressing stage yields for it, joined.
 * With `reuse: 'scratch'` a zstd result may be a view of a buffer the next call overwrites: the
 * caller consumes it first. Errors are raw library errors (ZstdDataError, zlib's Z_* errors) as from the stage, and
 * DecompressedTooLarge past `maxBytes`. `compression` must be what the data was written with.
 */
export function decompressBytes(compression: Compression, compressed: Buffer, maxBytes = MAX_DECOMPRESSED_BYTES, reuse: 'owned' | 'scratch' = 'owned'): Buffer {
  if (compression === 'none') return compressed;
  if (compression === 'gzip') {
    try {
      return gunzipSync(compressed, { finishFlush: zlibConstants.Z_FINISH, maxOutputLength: maxBytes });
    } catch (error) {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ERR_BUFFER_TOO_LARGE') throw new DecompressedTooLarge(maxBytes);
      throw error;
    }
  }
  const zstd = loadZstd();
  if (zstd === null) throw zstdMissing();
  // An empty object is an empty stream to the stage too: no frame begun, none left unfinished.
  if (compressed.length === 0) return compressed;
  const context = (zstdDecompressContext ??= new zstd.DCtx());
  context.reset(zstd.ResetDirective.sessionOnly);
  let recorded: number | null;
  try {
    recorded = zstd.getFrameContentSize(compressed);
  } catch {
    recorded = null; // not a frame header: decompressStream reports it
  }
  // The size the first frame records (what encodeBytes writes) fills one buffer in one call;
  // otherwise buffers grow from zstd's own output size.
  let capacity = recorded !== null && recorded > 0 && recorded <= maxBytes ? recorded : Math.min(maxBytes + 1, Math.max(zstd.dStreamOutSize(), 2 * compressed.length));
  const pieces: Buffer[] = [];
  let total = 0;
  let input = compressed;
  let remaining: number;
  for (;;) {
    let output: Buffer;
    if (reuse === 'scratch' && pieces.length === 0) {
      if (zstdOutputScratch.length < capacity) zstdOutputScratch = Buffer.allocUnsafeSlow(capacity);
      output = zstdOutputScratch.subarray(0, capacity);
    } else {
      output = Buffer.allocUnsafe(capacity);
    }
    let produced: number;
    let consumed: number;
    try {
      [remaining, produced, consumed] = context.decompressStream(output, input);
    } catch (error) {
      throw new ZstdDataError(error instanceof Error ? error.message : String(error), false, { cause: error });
    }
    input = input.subarray(consumed);
    total += produced;
    if (total > maxBytes) throw new DecompressedTooLarge(maxBytes);
    if (produced > 0) pieces.push(produced === output.length ? output : output.subarray(0, produced));
    if (input.length === 0 && (produced < output.length || remaining === 0)) break;
    // More is coming: the scratch holds only the first piece, so that one becomes a copy.
    if (pieces.length === 1 && pieces[0]!.buffer === zstdOutputScratch.buffer) pieces[0] = Buffer.from(pieces[0]!);
    capacity = Math.min(Math.max(capacity, zstd.dStreamOutSize()) * 2, maxBytes + 1 - total);
  }
  if (remaining !== 0) throw new ZstdDataError('zstd stream ended inside a frame', true);
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, total);
}

/** decompressBytes' default bound on one buffer's plaintext (a crafted frame cannot claim gigabytes of memory). */
export const MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024;

/** decompressBytes would produce more than its bound. */
export class DecompressedTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`the data decompresses to more than ${maxBytes} bytes`);
    this.name = 'DecompressedTooLarge';
  }
}

/** Streams at least this large are decompressed on a worker thread (its start-up costs ~30 ms). */
export const ZSTD_WORKER_THRESHOLD_BYTES = 64 * 1024 * 1024;

/**
 * A decompressing stage, or null for `none`. Errors thrown by it are raw library errors; the
 * decoder maps them to INTEGRITY_FORMAT. `storedBytes` picks a worker thread for large streams.
 */
export function decompressor(compression: Compression, storedBytes = 0): Stage | Transform | null {
  if (compression === 'none') return null;
  if (compression === 'gzip') {
    // Z_SYNC_FLUSH tolerance would hide truncation; the default finishFlush makes a short stream fail.
    return createGunzip({ finishFlush: zlibConstants.Z_FINISH });
  }
  const zstd = loadZstd();
  if (zstd === null) throw zstdMissing();
  if (storedBytes >= ZSTD_WORKER_THRESHOLD_BYTES && process.env['TIDEMARK_ZSTD_DECODE_WORKER'] !== 'off') {
    return zstdWorkerDecompressStage((message, endedMidFrame) => new ZstdDataError(message, endedMidFrame));
  }
  return zstdDecompressStage(zstd);
}

/** A failure of the zstd decoder itself (not of the stream feeding it). */
export class ZstdDataError extends Error {
  constructor(
    message: string,
    readonly endedMidFrame: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ZstdDataError';
  }
}

/**
 * zstd's own DecompressStream pushes everything one input chunk expands to at once (a 64 KiB
 * chunk of zeros is gigabytes), so we drive the native context ourselves and yield one output
 * buffer at a time: the consumer's pace bounds memory.
 */
function zstdDecompressStage(zstd: ZstdBinding): Stage {
  const outSize = zstd.dStreamOutSize();
  return async function* decompressZstd(source) {
    const context = new zstd.DCtx();
    let inFrame = false;
    for await (const piece of source) {
      let input = toBuffer(piece);
      for (;;) {
        const output = Buffer.allocUnsafe(outSize);
        let progress: [remaining: number, produced: number, consumed: number];
        try {
          progress = context.decompressStream(output, input);
        } catch (error) {
          throw new ZstdDataError(error instanceof Error ? error.message : String(error), false, { cause: error });
        }
        const [remaining, produced, consumed] = progress;
        input = input.subarray(consumed);
        inFrame = remaining !== 0;
        if (produced > 0) yield output.subarray(0, produced);
        if (input.length === 0 && (produced < output.length || remaining === 0)) break;
      }
    }
    if (inFrame) throw new ZstdDataError('zstd stream ended inside a frame', true);
  };
}

function zstdMissing(): TidemarkError {
  return new TidemarkError(
    'INTERNAL',
    'the zstd native binding (zstd-napi) did not load: reinstall dependencies for this platform, or use gzip',
  );
}
