// Times and owners as the tree records them, applied to what the restore made.
import type { TreeEntry } from '../tree/entry.js';

const NS_PER_SECOND = 1_000_000_000n;

/**
 * Seconds for utimes. Node takes a double, which near today's epoch resolves about 0.25 µs, so a
 * restored mtime is within a microsecond of the tree's nanoseconds (compare allows that much).
 */
export function secondsOf(entry: Pick<TreeEntry, 'mtimeNs'>): number {
  const ns = BigInt(entry.mtimeNs);
  const seconds = ns / NS_PER_SECOND;
  return Number(seconds) + Number(ns - seconds * NS_PER_SECOND) / 1e9;
}
