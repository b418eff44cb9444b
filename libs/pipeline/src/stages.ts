// Small building blocks shared by encode and decode. Stages are async generator functions so
// stream.pipeline drives them with backpressure: a stage only runs when its consumer asks.
import { createHash } from 'node:crypto';

export type Stage = (source: AsyncIterable<unknown>) => AsyncGenerator<Buffer, void, unknown>;

export function toBuffer(piece: unknown): Buffer {
  if (Buffer.isBuffer(piece)) return piece;
  if (piece instanceof Uint8Array) return Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
  if (typeof piece === 'string') return Buffer.from(piece);
  throw new TypeError('the pipeline accepts only bytes (Buffer, Uint8Array or string chunks)');
}

/** Running byte count and sha256 of what flows through a stage. */
export interface Meter {
  readonly stage: Stage;
  /** Bytes seen so far. */
  bytes(): number;
  /** True once the source has ended (the count and digest are final). */
  finished(): boolean;
  /** Hex sha256; only valid once finished. */
  sha256(): string;
}

export function meter(options: { hash: boolean }): Meter {
  const hash = options.hash ? createHash('sha256') : null;
  let bytes = 0;
  let finished = false;
  let digest = '';
  return {
    stage: async function* measure(source) {
      for await (const piece of source) {
        const buffer = toBuffer(piece);
        bytes += buffer.length;
        hash?.update(buffer);
        yield buffer;
      }
      digest = hash?.digest('hex') ?? '';
      finished = true;
    },
    bytes: () => bytes,
    finished: () => finished,
    sha256: () => digest,
  };
}

/** A FIFO of byte pieces that hands out exact-length slices without re-concatenating on every push. */
export class ByteQueue {
  private readonly pieces: Buffer[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(piece: Buffer): void {
    if (piece.length === 0) return;
    this.pieces.push(piece);
    this.size += piece.length;
  }

  /** Reads a big-endian u32 at `offset` without consuming; caller ensures length >= offset + 4. */
  peekUint32(offset: number): number {
    return this.peek(offset + 4).readUInt32BE(offset);
  }

  /** The first `count` bytes without consuming them (joins leading pieces when needed). */
  peek(count: number): Buffer {
    this.coalesce(count);
    return this.pieces[0]!.subarray(0, count);
  }

  take(count: number): Buffer {
    if (count === 0) return Buffer.alloc(0);
    this.coalesce(count);
    const first = this.pieces[0]!;
    const taken = first.subarray(0, count);
    if (first.length === count) this.pieces.shift();
    else this.pieces[0] = first.subarray(count);
    this.size -= count;
    return taken;
  }

  private coalesce(count: number): void {
    if (count > this.size) throw new RangeError('byte queue underflow');
    const first = this.pieces[0];
    if (first !== undefined && first.length >= count) return;
    let gathered = 0;
    let used = 0;
    while (gathered < count) gathered += this.pieces[used++]!.length;
    const joined = Buffer.concat(this.pieces.slice(0, used), gathered);
    this.pieces.splice(0, used, joined);
  }
}
