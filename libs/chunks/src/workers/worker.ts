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
import type { FilePartWrite, StoredFile, WholeFileWrite } from '../api.js';
import { isAllZero } from '../zeros.js';
import { BufferPool, ownsWholeBuffer } from '../buffer-pool.js';
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
/**
 * Slabs are reused (see BufferPool): powers of two from 64 KiB, so that freed slabs fit the next
 * files, and at most 48 MiB kept per worker.
 */
const slabs = new BufferPool(64 * 1024, 48 * 1024 * 1024);

/** Bytes read from one file; chunks held for a decision are views of it, so it returns to the pool only once the job left it and none is held. */
interface Slab {
  readonly bytes: Buffer;
  held: number;
  inUse: boolean;
}

const takeSlab = (atLeast: number): Slab => ({ bytes: slabs.take(atLeast), held: 0, inUse: true });

/** The slab's job moved on (`inUse` false) or one of its held chunks was decided on: pooled once both hold. */
function releaseSlab(slab: Slab): void {
  if (!slab.inUse && slab.held === 0) slabs.give(slab.bytes);
}

function leaveSlab(job: FileJob): void {
  job.slab.inUse = false;
  releaseSlab(job.slab);
  job.slab = NO_SLAB;
}

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
  /** Chunks waiting for the main thread's store or drop, with the slab each is a view of. */
  readonly held: Map<number, { chunk: Buffer; slab: Slab }>;
  /** Encode each chunk at once and send it with its announcement (the file is new: its chunks almost always are). */
  readonly eager: boolean;
  readonly sizeHint: number;
  /** Announced and not yet decided on: held chunks and unacknowledged eager ones. */
  outstanding: number;
  slab: Slab;
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
const NO_SLAB: Slab = { bytes: EMPTY, held: 0, inUse: false };
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
        slab: NO_SLAB, slabEnd: 0, chunkStart: 0, size: 0, seq: 0, stopped: false, reading: false, wake: undefined,
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
      const held = job.held.get(message.seq);
      job.held.delete(message.seq);
      if (held !== undefined) {
        if (message.t === 'store') store(job, message.seq, held.chunk);
        held.slab.held -= 1;
        releaseSlab(held.slab);
      }
      job.outstanding -= 1;
      wakeUp(job);
      return;
    }
    case 'abort': {
      const job = jobs.get(message.job);
      if (job === undefined) return;
      // The main thread gave up on every held chunk; a path read answers once it stopped reading.
      for (const { slab } of job.held.values()) {
        slab.held -= 1;
        releaseSlab(slab);
      }
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
      const zeroWritten: number[] = [];
      const plains = message.blobs.map((blob, i) => {
        // Decoded into the codec's scratch: written from there, or copied out to go back.
        const plain = decodeBlob(stored.subarray(blob.offset, blob.offset + blob.length), message.pipeline, ring, blob.id, 'scratch');
        if (blob.files === undefined) return Buffer.from(plain);
        const zero = isAllZero(plain);
        if (zero) zeroWritten.push(i);
        for (const file of blob.files) {
          if (file.kind === 'whole') writeWhole(file, plain, zero);
          else if (!zero) writePart(file, plain);
        }
        return EMPTY;
      });
      const plain = transferable(plains.length === 1 ? plains[0]! : Buffer.concat(plains));
      // Sent plaintexts are copies, written ones come from the scratch: `stored` goes back for reuse unless `plain` is it.
      const handBack = plain.buffer !== stored.buffer && stored.byteLength > 0 && ownsWholeBuffer(stored);
      post({ t: 'decoded', job: message.job, plain, lengths: plains.map((one) => one.length), zeroWritten, ...(handBack ? { stored } : {}) }, handBack ? [plain.buffer as ArrayBuffer, stored.buffer as ArrayBuffer] : [plain.buffer as ArrayBuffer]);
      return;
    }
  }
}

/** A one-chunk file, whole (see ChunkFileWrite): synchronous calls, each far cheaper here than a promise on the main thread. */
function writeWhole(file: WholeFileWrite, plain: Buffer, zero: boolean): void {
  const fd = openSync(file.temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, file.createMode);
  try {
    if (!zero) writeFully(fd, plain, file.offset);
    if (zero || file.holes) ftruncateSync(fd, file.size);
    if (file.owner !== undefined) fchownSync(fd, file.owner.uid, file.owner.gid);
    if (file.chmod !== undefined) fchmodSync(fd, file.chmod);
    futimesSync(fd, file.mtimeSeconds, file.mtimeSeconds);
  } finally {
    closeSync(fd);
  }
  renameSync(file.temp, file.final);
}

/** A chunk of a file of several, at its offset in the temp file the main thread created (see FilePartWrite). */
function writePart(part: FilePartWrite, plain: Buffer): void {
  const fd = openSync(part.temp, constants.O_WRONLY | constants.O_NOFOLLOW);
  try {
    writeFully(fd, plain, part.offset);
  } finally {
    closeSync(fd);
  }
}

function writeFully(fd: number, bytes: Buffer, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
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
      const read = readSync(fd, job.slab.bytes, job.slabEnd, Math.min(free, MAX_READ_BYTES), null);
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
    const copied = piece.copy(job.slab.bytes, job.slabEnd, at, at + room);
    at += copied;
    cut(job, copied);
  }
}

/** Free bytes at the slab's end (at least one): a new slab, with the unfinished chunk moved over, when the old one is full. */
function makeRoom(job: FileJob): number {
  const { sizeHint } = job;
  const free = job.slab.bytes.length - job.slabEnd;
  if (free >= Math.min(MIN_READ_BYTES, sizeHint + 1) && free > 0) return free;
  const unfinished = job.slabEnd - job.chunkStart;
  // Sized to the file when it is small (its bytes and one more, to see the end): most files are.
  const slab = takeSlab(Math.max(unfinished + MIN_READ_BYTES, job.size === 0 ? Math.min(SLAB_BYTES, sizeHint + 1) : SLAB_BYTES));
  job.slab.bytes.copy(slab.bytes, 0, job.chunkStart, job.slabEnd);
  leaveSlab(job);
  job.slab = slab;
  job.slabEnd = unfinished;
  job.chunkStart = 0;
  return slab.bytes.length - unfinished;
}

/** `added` new bytes at the slab's end: hashed, and every chunk they complete announced. */
function cut(job: FileJob, added: number): void {
  const from = job.slabEnd;
  job.slabEnd += added;
  job.size += added;
  const filled = job.slab.bytes.subarray(0, job.slabEnd);
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
    job.held.set(seq, { chunk, slab: job.slab });
    job.slab.held += 1;
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
  if (job.slabEnd > job.chunkStart) announce(job, job.slab.bytes.subarray(job.chunkStart, job.slabEnd));
  leaveSlab(job);
  post({ t: 'done', job: job.id, sha256: job.hash.digest('hex'), size: job.size, ...(after === undefined ? {} : { after }) });
  forgetOnceDecided(job);
}

/** The file could not be read on: chunks already announced still get their decisions. */
function stop(job: FileJob, error: unknown): void {
  leaveSlab(job);
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
