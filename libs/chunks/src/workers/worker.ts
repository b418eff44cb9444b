// A codec worker: chunks files (gear cuts, the file's SHA-256, chunk ids), encodes the chunks the
// repository lacks (zstd, AES-256-GCM) and decodes blobs for restores (writing one-chunk files
// whole), so that this work runs on every core while the main thread walks, decides, packs and
// reads packs. See pool.ts.
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, ftruncateSync, futimesSync, lstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { setImmediate as yieldToMessages } from 'node:timers/promises';
import { parentPort } from 'node:worker_threads';
import { TidemarkError, type PipelineFacts } from '@tidemark/contracts';
import { encodeBytes, keyRingOf, type EncryptionKey, type KeyRing } from '@tidemark/pipeline';
import { decodeBlob } from '../blob.js';
import { chunkIdFunction, type ChunkIdFunction } from '../chunk-id.js';
import { GearCutter } from '../chunker.js';
import type { ChunkFileWrite, StoredFile } from '../api.js';
import { isAllZero } from '../zeros.js';
import { LOCAL_READ_FLAGS, afterReading, notARegularFile } from '../local-file.js';
import { transferable, type CodecContext, type FromWorker, type ToWorker, type WireError, type WireKey } from './protocol.js';

/** Chunks announced and not yet decided on (stored, dropped, or an eager one acknowledged), per file: the read pauses beyond this. */
const OUTSTANDING_CHUNKS = 6;
const MAX_READ_BYTES = 1024 * 1024;
const MIN_READ_BYTES = 16 * 1024;
/**
 * Bytes are read into a slab and chunks are views of it: only the unfinished chunk at a slab's end
 * is copied into the next one (a copy per chunk spanning two 1 MiB reads cost a tenth of a backup).
 */
const SLAB_BYTES = 8 * 1024 * 1024;

interface Context {
  readonly facts: CodecContext;
  readonly key: EncryptionKey | undefined;
  readonly chunkId: ChunkIdFunction;
}

interface FileJob {
  readonly id: number;
  readonly context: Context;
  readonly cutter: GearCutter;
  readonly hash: Hash;
  /** Chunks waiting for the main thread's store or drop. */
  readonly held: Map<number, Buffer>;
  /** Encode each chunk at once and send it with its announcement (the file is new: its chunks almost always are). */
  readonly eager: boolean;
  readonly sizeHint: number;
  /** Announced and not yet decided on: held chunks and unacknowledged eager ones. */
  outstanding: number;
  slab: Buffer;
  /** Bytes of the slab filled; the unfinished chunk starts at `chunkStart`. */
  slabEnd: number;
  chunkStart: number;
  size: number;
  seq: number;
  /** No more bytes: the file ended or could not be read. */
  stopped: boolean;
  /** A path read is running: an abort is answered once its loop stops. */
  reading: boolean;
  abortRequested?: boolean;
  /** Wakes a paused read (or a finished job waiting to be forgotten) when a decision or an abort arrives. */
  wake: (() => void) | undefined;
}

const port = parentPort!;
const EMPTY = Buffer.alloc(0);
const contexts = new Map<number, Context>();
const jobs = new Map<number, FileJob>();
const decodeRings = new Map<string, KeyRing>();

const post = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

port.on('message', (message: ToWorker) => {
  try {
    handle(message);
  } catch (error) {
    // Only a decode throws here: a file job's failures are answered where they happen.
    if ('job' in message) post({ t: 'failed', job: message.job, error: wireError(error) });
  }
});

function handle(message: ToWorker): void {
  switch (message.t) {
    case 'context': {
      const key = message.key === undefined ? undefined : { id: message.key.id, key: Buffer.from(message.key.key) };
      contexts.set(message.context, { facts: message, key, chunkId: chunkIdFunction(key) });
      return;
    }
    case 'file': {
      const context = contextOf(message.context);
      const job: FileJob = {
        id: message.job, context, cutter: new GearCutter(context.facts.chunker), hash: createHash('sha256'), held: new Map(), eager: message.eager === true, sizeHint: message.sizeHint, outstanding: 0,
        slab: EMPTY, slabEnd: 0, chunkStart: 0, size: 0, seq: 0, stopped: false, reading: false, wake: undefined,
      };
      jobs.set(job.id, job);
      if (message.path !== undefined) void readPath(job, Buffer.from(message.path.buffer, message.path.byteOffset, message.path.byteLength));
      return;
    }
    case 'data': {
      const job = jobs.get(message.job);
      if (job !== undefined && !job.stopped) feed(job, Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength));
      return;
    }
    case 'end': {
      const job = jobs.get(message.job);
      if (job !== undefined && !job.stopped) finish(job);
      return;
    }
    case 'store':
    case 'drop': {
      // A drop of an eager chunk (never held) acknowledges it.
      const job = jobs.get(message.job);
      if (job === undefined) return;
      const chunk = job.held.get(message.seq);
      job.held.delete(message.seq);
      if (message.t === 'store' && chunk !== undefined) store(job, message.seq, chunk);
      job.outstanding -= 1;
      wakeUp(job);
      return;
    }
    case 'abort': {
      const job = jobs.get(message.job);
      if (job === undefined) return;
      // The main thread gave up on every held chunk; a path read answers once it stopped reading.
      job.held.clear();
      job.outstanding = 0;
      if (job.stopped) jobs.delete(job.id);
      else if (job.reading) job.abortRequested = true;
      else stop(job, new Error('aborted'));
      wakeUp(job);
      return;
    }
    case 'decode': {
      const ring = message.key === undefined ? keyRingOf(undefined) : ringOf(message.key);
      const stored = Buffer.from(message.stored.buffer, message.stored.byteOffset, message.stored.byteLength);
      const plains = message.blobs.map((blob) => {
        const plain = decodeBlob(stored.subarray(blob.offset, blob.offset + blob.length), message.pipeline, ring, blob.id);
        if (blob.files === undefined) return plain;
        const zero = isAllZero(plain);
        for (const file of blob.files) writeWhole(file, plain, zero);
        return EMPTY;
      });
      const plain = transferable(plains.length === 1 ? plains[0]! : Buffer.concat(plains));
      post({ t: 'decoded', job: message.job, plain, lengths: plains.map((one) => one.length) }, [plain.buffer as ArrayBuffer]);
      return;
    }
  }
}

/** A one-chunk file, whole (see ChunkFileWrite): synchronous calls, each far cheaper here than a promise on the main thread. */
function writeWhole(file: ChunkFileWrite, plain: Buffer, zero: boolean): void {
  const fd = openSync(file.temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, file.createMode);
  try {
    if (!zero) for (let done = 0; done < plain.length; ) done += writeSync(fd, plain, done, plain.length - done, file.offset + done);
    if (zero || file.holes) ftruncateSync(fd, file.size);
    if (file.owner !== undefined) fchownSync(fd, file.owner.uid, file.owner.gid);
    if (file.chmod !== undefined) fchmodSync(fd, file.chmod);
    futimesSync(fd, file.mtimeSeconds, file.mtimeSeconds);
  } finally {
    closeSync(fd);
  }
  renameSync(file.temp, file.final);
}

function store(job: FileJob, seq: number, chunk: Buffer): void {
  try {
    const blob = encode(job.context, chunk);
    post({ t: 'blob', job: job.id, seq, bytes: blob.bytes, pipeline: blob.pipeline }, [blob.bytes.buffer as ArrayBuffer]);
  } catch (error) {
    post({ t: 'blobFailed', job: job.id, seq, error: wireError(error) });
  }
}

function encode({ facts, key }: Context, chunk: Buffer): { bytes: Uint8Array; pipeline: PipelineFacts } {
  const blob = encodeBytes(chunk, { compression: facts.compression, ...(facts.compressionLevel === undefined ? {} : { compressionLevel: facts.compressionLevel }), ...(key === undefined ? {} : { key }) });
  return { bytes: transferable(blob.bytes), pipeline: blob.pipeline };
}

/**
 * Opens, reads and closes the file here, with synchronous calls: on the main thread each of them
 * cost tens of microseconds of promise machinery per file, more than the call.
 */
async function readPath(job: FileJob, path: Buffer): Promise<void> {
  job.reading = true;
  let fd: number | undefined;
  try {
    fd = openSync(path, LOCAL_READ_FLAGS);
    if (!fstatSync(fd).isFile()) throw notARegularFile();
    for (;;) {
      while (job.outstanding >= OUTSTANDING_CHUNKS && job.abortRequested !== true) await new Promise<void>((resolve) => (job.wake = resolve));
      if (job.abortRequested === true) throw new Error('aborted');
      const free = makeRoom(job);
      const read = readSync(fd, job.slab, job.slabEnd, Math.min(free, MAX_READ_BYTES), null);
      if (read === 0) break;
      cut(job, read);
      // Lets decisions and aborts in between reads.
      await yieldToMessages();
    }
    closeSync(fd);
    fd = undefined;
    job.reading = false;
    finish(job, statAfter(path));
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    job.reading = false;
    stop(job, error);
  }
}

/** The file's lstat once read, to catch a change during the read (see the snapshot's changedWhy). */
function statAfter(path: Buffer): StoredFile['after'] {
  try {
    return afterReading(lstatSync(path, { bigint: true, throwIfNoEntry: false }));
  } catch (error) {
    return afterReading(undefined, error);
  }
}

/** Fed bytes (a stream source) go through the slab like read ones. */
function feed(job: FileJob, piece: Buffer): void {
  for (let at = 0; at < piece.length; ) {
    const room = makeRoom(job);
    const copied = piece.copy(job.slab, job.slabEnd, at, at + room);
    at += copied;
    cut(job, copied);
  }
}

/** Free bytes at the slab's end (at least one): a new slab, with the unfinished chunk moved over, when the old one is full. */
function makeRoom(job: FileJob): number {
  const { sizeHint } = job;
  const free = job.slab.length - job.slabEnd;
  if (free >= Math.min(MIN_READ_BYTES, sizeHint + 1) && free > 0) return free;
  const unfinished = job.slabEnd - job.chunkStart;
  // Sized to the file when it is small (its bytes and one more, to see the end): most files are.
  const slab = Buffer.allocUnsafeSlow(Math.max(unfinished + MIN_READ_BYTES, job.size === 0 ? Math.min(SLAB_BYTES, sizeHint + 1) : SLAB_BYTES));
  job.slab.copy(slab, 0, job.chunkStart, job.slabEnd);
  job.slab = slab;
  job.slabEnd = unfinished;
  job.chunkStart = 0;
  return slab.length - unfinished;
}

/** `added` new bytes at the slab's end: hashed, and every chunk they complete announced. */
function cut(job: FileJob, added: number): void {
  const from = job.slabEnd;
  job.slabEnd += added;
  job.size += added;
  const filled = job.slab.subarray(0, job.slabEnd);
  job.hash.update(filled.subarray(from));
  for (let at = job.cutter.cut(filled, from); at >= 0; at = job.cutter.cut(filled, at)) {
    announce(job, filled.subarray(job.chunkStart, at));
    job.chunkStart = at;
  }
}

function announce(job: FileJob, chunk: Buffer): void {
  const seq = job.seq++;
  job.outstanding += 1;
  const id = job.context.chunkId(chunk);
  if (!job.eager) {
    job.held.set(seq, chunk);
    post({ t: 'chunk', job: job.id, seq, id, size: chunk.length });
    return;
  }
  try {
    const blob = encode(job.context, chunk);
    post({ t: 'chunk', job: job.id, seq, id, size: chunk.length, blob: blob.bytes, pipeline: blob.pipeline }, [blob.bytes.buffer as ArrayBuffer]);
  } catch (error) {
    post({ t: 'chunk', job: job.id, seq, id, size: chunk.length });
    post({ t: 'blobFailed', job: job.id, seq, error: wireError(error) });
  }
}

function finish(job: FileJob, after?: StoredFile['after']): void {
  if (job.slabEnd > job.chunkStart) announce(job, job.slab.subarray(job.chunkStart, job.slabEnd));
  job.slab = EMPTY;
  post({ t: 'done', job: job.id, sha256: job.hash.digest('hex'), size: job.size, ...(after === undefined ? {} : { after }) });
  forgetOnceDecided(job);
}

/** The file could not be read on: chunks already announced still get their decisions. */
function stop(job: FileJob, error: unknown): void {
  job.slab = EMPTY;
  post({ t: 'failed', job: job.id, error: wireError(error) });
  forgetOnceDecided(job);
}

function forgetOnceDecided(job: FileJob): void {
  job.stopped = true;
  if (job.held.size === 0) jobs.delete(job.id);
  else job.wake = () => forgetOnceDecided(job);
}

function wakeUp(job: FileJob): void {
  const wake = job.wake;
  job.wake = undefined;
  wake?.();
}

function contextOf(id: number): Context {
  const context = contexts.get(id);
  if (context === undefined) throw new Error(`codec context ${id} was never registered`);
  return context;
}

function ringOf(key: WireKey): KeyRing {
  let ring = decodeRings.get(key.id);
  const bytes = Buffer.from(key.key);
  if (ring === undefined || !ring.get(key.id)!.key.equals(bytes)) decodeRings.set(key.id, (ring = keyRingOf({ id: key.id, key: bytes })));
  return ring;
}

function wireError(error: unknown): WireError {
  if (error instanceof TidemarkError) return { message: error.message, tidemarkCode: error.code, retryable: error.retryable };
  const errno = (error as { code?: unknown } | null)?.code;
  return { message: error instanceof Error ? error.message : String(error), ...(typeof errno === 'string' ? { errno } : {}) };
}
