// Buffers reused instead of allocated per use. A backup or a restore moves its gigabytes through
// buffers of a few sizes (a worker's read slabs, a restore's pack batches): a fresh one each time
// cost page faults to fill and garbage collections to free (V8 collects by the external memory
// allocated since the last collection), a sixth of a backup's CPU time across the threads.

/** Whether `bytes` spans its whole ArrayBuffer: one that can be transferred to a thread, or pooled, without taking others' bytes along. */
export function ownsWholeBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
}

/** Free buffers by size (powers of two from `minBytes`), at most `maxPooledBytes` in all. */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  constructor(
    private readonly minBytes: number,
    private readonly maxPooledBytes: number,
  ) {}

  /** A buffer of at least `atLeast` bytes (its contents are old bytes), owning its whole ArrayBuffer. */
  take(atLeast: number): Buffer {
    let size = this.minBytes;
    while (size < atLeast) size *= 2;
    const reused = this.free.get(size)?.pop();
    if (reused === undefined) return Buffer.allocUnsafeSlow(size);
    this.pooledBytes -= size;
    return reused;
  }

  /** A buffer from take() that nothing refers to any more; kept while the pool has room (a detached or foreign one is dropped). */
  give(buffer: Buffer): void {
    const size = buffer.length;
    if (size < this.minBytes || (size & (size - 1)) !== 0 || !ownsWholeBuffer(buffer)) return;
    if (this.pooledBytes + size > this.maxPooledBytes) return;
    this.pooledBytes += size;
    const list = this.free.get(size);
    if (list === undefined) this.free.set(size, [buffer]);
    else list.push(buffer);
  }
}
