import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { keyRingOf, type KeyRing } from '@tidemark/pipeline';
import { createMemoryBackend, type StorageBackend } from '@tidemark/storage';
import type { RepositoryOptions } from '@tidemark/chunks';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export const encryptedKeys = (): KeyRing => keyRingOf({ id: 'test-key', key: randomBytes(32) });
export const noKeys = (): KeyRing => keyRingOf(undefined);

/** Deterministic bytes (xorshift32), fast enough for tens of MiB. */
export function pseudoRandom(bytes: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(bytes + 3);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out.writeUInt32LE(state >>> 0, i);
  }
  return out.subarray(0, bytes);
}

/** Yields `data` in reads of `readBytes`, as a file stream would. */
export async function* reads(data: Buffer, readBytes = 64 * KiB): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += readBytes) yield data.subarray(offset, offset + readBytes);
}

/** A controllable clock for markers and collections. */
export function manualClock(start = Date.parse('2030-01-01T00:00:00Z')): { now: () => Date; advance(ms: number): void } {
  let time = start;
  return { now: () => new Date(time), advance: (ms) => void (time += ms) };
}

export function repositoryOptions(overrides: Partial<RepositoryOptions> = {}): RepositoryOptions {
  return { backend: createMemoryBackend(), keyRing: encryptedKeys(), compression: 'zstd', packBytes: 256 * KiB, ...overrides };
}

export const streamOf = (data: Buffer): Readable => Readable.from([data], { objectMode: false });

export async function keysUnder(backend: StorageBackend, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of backend.list(prefix)) keys.push(object.key);
  return keys.sort();
}
