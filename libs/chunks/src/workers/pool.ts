// The codec pool: worker threads that chunk, hash, compress, encrypt and decode, one per core by
// default. On one thread a first backup spent 80 % of its time in SHA-256 (twice: the file's digest
// and the chunk id), zstd, AES-GCM and the garbage they leave, and a restore half of it decoding,
// while restic used every core (bench/files-restic.mjs). The main thread keeps the walk, the
// dedup decisions, the packs and the writes.
//
// A file job: the worker opens and reads the file itself (or is fed its bytes from a stream), cuts
// and names its chunks, and holds each one until the main thread answers `store` (the repository
// lacks it: the worker encodes it and sends the blob back) or `drop`. An eager job (a file new to
// the target) sends each chunk encoded at once, and the main thread acknowledges it. At most a few
// chunks are outstanding per file, so memory stays flat whatever the file size.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TidemarkError, type Compression, type ErrorCode, type PipelineFacts } from '@tidemark/contracts';
import type { EncryptionKey } from '@tidemark/pipeline';
import type { ChunkId, ChunkerSettings, FileInput, StoredFile } from '../api.js';
import { transferable, type DecodeEntry, type FromWorker, type ToWorker, type WireError, type WireKey } from './protocol.js';

/** Bytes fed to a worker and not yet decided on (stored or dropped): a chunk of the largest size, and reads to fill the next. */
const FEED_WINDOW_BYTES = 8 * 1024 * 1024;
const MAX_WORKERS = 8;

export interface CodecSettings {
  readonly chunker: ChunkerSettings;
  readonly compression: Compression;
  readonly compressionLevel: number | undefined;
  readonly key: EncryptionKey | undefined;
}

export type FileChunkEvent =
  | { readonly t: 'chunk'; readonly seq: number; readonly id: ChunkId; readonly size: number }
  | { readonly t: 'done'; readonly sha256: string; readonly size: number; readonly after?: StoredFile['after'] };

/** A decode's plaintexts in entry order (empty for entries written into files), and the written entries that were all zeros. */
export interface DecodedBatch {
  readonly plains: readonly Buffer[];
  readonly zeroWritten: ReadonlySet<number>;
}

export interface EncodedChunk {
  readonly bytes: Buffer;
  readonly pipeline: PipelineFacts;
}

/** One file in a worker: its chunks in order, then its digest; every chunk must be stored or dropped. */
export interface FileChunking extends AsyncIterable<FileChunkEvent> {
  store(seq: number): Promise<EncodedChunk>;
  drop(seq: number): void;
  /** Stops the job; pending store() calls reject. */
  abort(): void;
  /** Settles once the worker no longer reads the input. */
  readonly released: Promise<void>;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly contexts: Set<number>;
  readonly jobs: Set<number>;
  /**
   * Bytes given to it and not yet worked through: files' sizes less what they announced, packs
   * being decoded. Jobs are given by this, not by their count: a worker busy with a 256 MiB file
   * counted as idle as one with a 3 KiB file, and got as many new files, while the other one then
   * waited out the big file's end alone (a third of a backup's time on one worker was idle).
   */
  load: number;
}

type Route = (message: FromWorker) => void;
type Fail = (error: Error) => void;

export class CodecPool {
  private readonly workers: PoolWorker[] = [];
  private readonly routes = new Map<number, { route: Route; fail: Fail; worker: PoolWorker }>();
  private readonly contexts = new Map<string, { id: number; settings: CodecSettings }>();
  private readonly contextSettings = new Map<number, CodecSettings>();
  private nextJob = 1;

  constructor(readonly size: number) {}

  /** The id jobs name `settings` by: the same settings (and key bytes) share one. */
  context(settings: CodecSettings): number {
    // The key's hash, not its bytes: no copy of a secret is kept in a string.
    const keyHash = settings.key === undefined ? undefined : createHash('sha256').update(settings.key.key).digest('hex');
    const fingerprint = JSON.stringify([settings.chunker, settings.compression, settings.compressionLevel, settings.key?.id, keyHash]);
    let known = this.contexts.get(fingerprint);
    if (known === undefined) {
      known = { id: this.contexts.size + 1, settings };
      this.contexts.set(fingerprint, known);
      this.contextSettings.set(known.id, settings);
    }
    return known.id;
  }

  chunkFile(context: number, input: FileInput): FileChunking {
    const owner = this.workerFor(context);
    const job = this.nextJob++;
    const events: FileChunkEvent[] = [];
    const blobs = new Map<number, { resolve(chunk: EncodedChunk): void; reject(error: Error): void }>();
    const sizes = new Map<number, number>();
    /** Eager chunks' blobs (or encoding failures), until stored or dropped. */
    const eagerBlobs = new Map<number, EncodedChunk>();
    const eagerFailures = new Map<number, Error>();
    /** The file could not be read on: the iterator throws it after the chunks announced before it. */
    let inputFailure: Error | undefined;
    /** The worker is gone or the job was abandoned: nothing more will come. */
    let lost: Error | undefined;
    let ended = false;
    let wakeReader: (() => void) | undefined;
    let wakeFeeder: (() => void) | undefined;
    let fed = 0;
    let decided = 0;
    let resolveReleased!: () => void;
    const released = new Promise<void>((resolve) => (resolveReleased = resolve));
    const wake = (): void => {
      const [reader, feeder] = [wakeReader, wakeFeeder];
      wakeReader = wakeFeeder = undefined;
      reader?.();
      feeder?.();
    };
    let charged = Math.max(0, input.sizeHint);
    owner.load += charged;
    const discharge = (bytes: number): void => {
      const done = Math.min(charged, bytes);
      charged -= done;
      owner.load -= done;
    };
    const settle = (seq: number): void => {
      decided += sizes.get(seq) ?? 0;
      sizes.delete(seq);
      this.endIfIdle(job, ended, blobs.size);
    };
    const end = (failure?: Error): void => {
      discharge(charged);
      inputFailure ??= failure;
      ended = true;
      resolveReleased();
      this.endIfIdle(job, true, blobs.size);
    };
    const fail: Fail = (error) => {
      lost ??= error;
      for (const waiter of blobs.values()) waiter.reject(error);
      blobs.clear();
      end();
      wake();
    };
    const route: Route = (message) => {
      if (lost !== undefined) return;
      switch (message.t) {
        case 'chunk':
          discharge(message.size);
          sizes.set(message.seq, message.size);
          if (message.blob !== undefined && message.pipeline !== undefined) {
            eagerBlobs.set(message.seq, { bytes: Buffer.from(message.blob.buffer, message.blob.byteOffset, message.blob.byteLength), pipeline: message.pipeline });
          }
          events.push({ t: 'chunk', seq: message.seq, id: message.id, size: message.size });
          break;
        case 'done':
          // A fed stream that failed was ended by us: its digest covers only what was read.
          if (inputFailure === undefined) events.push({ t: 'done', sha256: message.sha256, size: message.size, ...(message.after === undefined ? {} : { after: message.after }) });
          end();
          break;
        case 'failed':
          end(errorOf(message.error));
          break;
        case 'blob':
        case 'blobFailed': {
          const waiter = blobs.get(message.seq);
          blobs.delete(message.seq);
          if (message.t === 'blob') waiter?.resolve({ bytes: Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength), pipeline: message.pipeline });
          else if (waiter !== undefined) waiter.reject(errorOf(message.error));
          // An eager chunk that failed to encode: its store() is still to come.
          else eagerFailures.set(message.seq, errorOf(message.error));
          if (waiter !== undefined) settle(message.seq);
          break;
        }
        case 'decoded':
          break;
      }
      wake();
    };
    this.routes.set(job, { route, fail, worker: owner });
    owner.jobs.add(job);
    if (owner.jobs.size === 1) owner.worker.ref();

    const send = (message: ToWorker, transfer: ArrayBuffer[] = []): void => owner.worker.postMessage(message, transfer);
    /** An eager chunk was used: the worker may read on (once the file ended it no longer waits: no message). */
    const acknowledge = (seq: number): void => {
      if (!ended) send({ t: 'drop', job, seq });
      settle(seq);
      wake();
    };
    if ('path' in input) {
      send({ t: 'file', job, context, path: input.path, sizeHint: input.sizeHint, eager: input.eager === true });
    } else {
      send({ t: 'file', job, context, sizeHint: input.sizeHint, eager: input.eager === true });
      void (async () => {
        try {
          for await (const read of input.stream) {
            while (lost === undefined && fed - decided >= FEED_WINDOW_BYTES) await new Promise<void>((resolve) => (wakeFeeder = resolve));
            if (lost !== undefined) return;
            // A copy: the stream's buffer may still be its producer's (a memory backend's object, a pool).
            const bytes = new Uint8Array(read);
            fed += bytes.byteLength;
            send({ t: 'data', job, bytes }, [bytes.buffer as ArrayBuffer]);
          }
          if (lost === undefined) send({ t: 'end', job });
        } catch (error) {
          // The stream's own failure (a file that vanished, a dropped download) is what the caller sees;
          // the chunks announced so far still get their decisions.
          inputFailure ??= error instanceof Error ? error : new Error(String(error));
          send({ t: 'end', job });
        }
      })();
    }

    return {
      released,
      store: (seq) => {
        if (lost !== undefined) return Promise.reject(lost);
        const eager = eagerBlobs.get(seq);
        const eagerFailure = eagerFailures.get(seq);
        if (eager !== undefined || eagerFailure !== undefined) {
          eagerBlobs.delete(seq);
          eagerFailures.delete(seq);
          acknowledge(seq);
          return eager === undefined ? Promise.reject(eagerFailure) : Promise.resolve(eager);
        }
        return new Promise<EncodedChunk>((resolve, reject) => {
          blobs.set(seq, { resolve, reject });
          send({ t: 'store', job, seq });
        });
      },
      drop: (seq) => {
        if (lost !== undefined) return;
        if (eagerBlobs.delete(seq) || eagerFailures.delete(seq)) {
          acknowledge(seq);
          return;
        }
        send({ t: 'drop', job, seq });
        settle(seq);
        wake();
      },
      abort: () => {
        if (lost !== undefined) return;
        send({ t: 'abort', job });
        const error = new TidemarkError('SHUTTING_DOWN', 'the file was abandoned before it was stored');
        for (const waiter of blobs.values()) waiter.reject(error);
        blobs.clear();
        lost = error;
        // A path job still reads until the worker sees the abort: `released` waits for its answer.
        if (!('path' in input) || ended) end();
        else this.routes.set(job, { route: (message) => (message.t === 'failed' || message.t === 'done' ? end() : undefined), fail: () => end(), worker: owner });
        wake();
      },
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const event = events.shift();
          if (event !== undefined) {
            yield event;
            if (event.t === 'done') return;
            continue;
          }
          if (lost !== undefined) throw lost;
          if (ended && inputFailure !== undefined) throw inputFailure;
          await new Promise<void>((resolve) => (wakeReader = resolve));
        }
      },
    };
  }

  /**
   * Blobs of one pack, decoded and checked against their ids on a worker (decodeBlob): `stored`
   * holds them at the entries' offsets. Resolves with the plaintexts in entry order (see DecodedBatch). `stored` is
   * handed over (its ArrayBuffer is transferred when it owns one whole): the caller must own it
   * alone. It comes back through `handedBack` when the plaintexts do not refer to it.
   */
  decode(stored: Buffer, blobs: readonly DecodeEntry[], pipeline: PipelineFacts, key: EncryptionKey | undefined, handedBack?: (stored: Buffer) => void): Promise<DecodedBatch> {
    return this.decodeOn(this.workerFor(undefined), stored, blobs, pipeline, key, handedBack);
  }

  /**
   * decode() on one worker for every call: the least loaded when first used. A pack's batches go
   * through one, because the files they write share directories, and two workers creating files in
   * one directory wait on its lock (2-3 times slower than in two directories, measured here).
   */
  decoder(): { decode: CodecPool['decode'] } {
    let owner: PoolWorker | undefined;
    return {
      decode: (stored, blobs, pipeline, key, handedBack) => {
        if (owner === undefined || !this.workers.includes(owner)) owner = this.workerFor(undefined);
        return this.decodeOn(owner, stored, blobs, pipeline, key, handedBack);
      },
    };
  }

  private decodeOn(owner: PoolWorker, stored: Buffer, blobs: readonly DecodeEntry[], pipeline: PipelineFacts, key: EncryptionKey | undefined, handedBack?: (stored: Buffer) => void): Promise<DecodedBatch> {
    const job = this.nextJob++;
    // Its length now: the buffer is transferred (detached) below.
    let charged = stored.length;
    owner.load += charged;
    const discharge = (): void => {
      owner.load -= charged;
      charged = 0;
    };
    return new Promise<DecodedBatch>((resolve, reject) => {
      const fail: Fail = (error) => {
        discharge();
        this.endIfIdle(job, true, 0);
        reject(error);
      };
      const route: Route = (message) => {
        if (message.t === 'decoded') {
          discharge();
          this.endIfIdle(job, true, 0);
          const plain = Buffer.from(message.plain.buffer, message.plain.byteOffset, message.plain.byteLength);
          if (message.stored !== undefined) handedBack?.(Buffer.from(message.stored.buffer, message.stored.byteOffset, message.stored.byteLength));
          let at = 0;
          resolve({ plains: message.lengths.map((length) => plain.subarray(at, (at += length))), zeroWritten: new Set(message.zeroWritten) });
        } else if (message.t === 'failed') {
          fail(errorOf(message.error));
        }
      };
      this.routes.set(job, { route, fail, worker: owner });
      owner.jobs.add(job);
      if (owner.jobs.size === 1) owner.worker.ref();
      const bytes = transferable(stored);
      const wireKey: WireKey | undefined = key === undefined ? undefined : { id: key.id, key: key.key };
      owner.worker.postMessage({ t: 'decode', job, stored: bytes, blobs, pipeline, ...(wireKey === undefined ? {} : { key: wireKey }) } satisfies ToWorker, [bytes.buffer as ArrayBuffer]);
    });
  }

  /** Stops every worker (tests; a service lets them idle, unreferenced). */
  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((entry) => entry.worker.terminate()));
  }

  private endIfIdle(job: number, finished: boolean, outstanding: number): void {
    if (!finished || outstanding > 0) return;
    const entry = this.routes.get(job);
    if (entry === undefined) return;
    this.routes.delete(job);
    entry.worker.jobs.delete(job);
    if (entry.worker.jobs.size === 0) entry.worker.worker.unref();
  }

  /** The least loaded worker (see PoolWorker.load), a new one while fewer than `size` run; registers `context` with it. */
  private workerFor(context: number | undefined): PoolWorker {
    const lighter = (entry: PoolWorker, best: PoolWorker): boolean => entry.load < best.load || (entry.load === best.load && entry.jobs.size < best.jobs.size);
    let chosen = this.workers.reduce<PoolWorker | undefined>((best, entry) => (best === undefined || lighter(entry, best) ? entry : best), undefined);
    if (chosen === undefined || (chosen.jobs.size > 0 && this.workers.length < this.size)) chosen = this.spawn();
    if (context !== undefined && !chosen.contexts.has(context)) {
      const settings = this.contextSettings.get(context)!;
      const key: WireKey | undefined = settings.key === undefined ? undefined : { id: settings.key.id, key: settings.key.key };
      chosen.worker.postMessage({ t: 'context', context, chunker: settings.chunker, compression: settings.compression, compressionLevel: settings.compressionLevel, key } satisfies ToWorker);
      chosen.contexts.add(context);
    }
    return chosen;
  }

  private spawn(): PoolWorker {
    const worker = new Worker(workerUrl());
    worker.unref();
    const entry: PoolWorker = { worker, contexts: new Set(), jobs: new Set(), load: 0 };
    this.workers.push(entry);
    worker.on('message', (message: FromWorker) => this.routes.get(message.job)?.route(message));
    const lost = (why: string): void => {
      const at = this.workers.indexOf(entry);
      if (at >= 0) this.workers.splice(at, 1);
      const error = new TidemarkError('INTERNAL', `a codec worker ${why}; the job may be retried`, { retryable: true });
      for (const job of [...entry.jobs]) this.routes.get(job)?.fail(error);
    };
    worker.on('error', (error) => lost(`failed: ${error.message}`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    return entry;
  }
}

/** The worker's compiled file (a test that loads this module from its TypeScript source still runs the built worker). */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('../../dist/workers/worker.js', import.meta.url) : new URL('./worker.js', import.meta.url);
}

function errorOf(wire: WireError): Error {
  if (wire.tidemarkCode !== undefined) return new TidemarkError(wire.tidemarkCode as ErrorCode, wire.message, wire.retryable === undefined ? {} : { retryable: wire.retryable });
  const error = new Error(wire.message) as Error & { code?: string };
  if (wire.errno !== undefined) error.code = wire.errno;
  return error;
}

let shared: CodecPool | undefined;

/** The process's pool: TIDEMARK_CODEC_WORKERS threads, by default one per core (at most 8). */
export function sharedCodecPool(): CodecPool {
  const configured = Number(process.env['TIDEMARK_CODEC_WORKERS']);
  shared ??= new CodecPool(Number.isInteger(configured) && configured > 0 ? Math.min(configured, MAX_WORKERS) : Math.min(availableParallelism(), MAX_WORKERS));
  return shared;
}
