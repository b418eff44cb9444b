// Version 2 trees: the entry lines cut into segments stored as chunks. A segment ends after an
// entry whose path hashes to a boundary (one entry in SEGMENT_ENTRIES on average), so boundaries
// depend on paths alone: a file that changes changes its own segment only, and an added or removed
// path moves one boundary at most. Segments are deduplicated like file chunks, so a snapshot
// where 1 % of 20,000 files changed stores about 8 % of its tree again, not all of it.
//
// Why about 8 entries: per segment a snapshot carries its reference (~45 bytes after compression)
// and, when it changed, the blob's own overhead (~65 bytes) and its index entry (~50 bytes).
// With 1 % of files changed at random, 8 entries made the least of that and of the entries stored
// again (estimated per 20,000 files: 4 → 340 KB, 8 → 320 KB, 16 → 435 KB, against 1.7 MB for
// the whole tree).
//
// The rule (FNV-1a of the path's bytes, mixed, the mask, the sizes) is part of the repository format:
// another rule cuts other segments, and then nothing deduplicates against what is stored.
import type { ChunkId } from '@tidemark/chunks';
import type { TreeEntry, TreeSegmentRef } from './entry.js';
import { bytesOf } from './paths.js';

const SEGMENT_ENTRIES = 8;
/** A segment also ends at the end of the line that brings it to this size. */
const SEGMENT_TARGET_BYTES = 64 * 1024;
/** No segment is longer: a line longer than this (a file of tens of thousands of chunks) spans segments. */
export const MAX_SEGMENT_BYTES = 4 * 1024 * 1024;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Whether a segment ends after this entry. FNV-1a's low bits depend only on the bytes' low bits
 * (paths that differ in a digit or two cut every 80 entries, not 8, in a test of 100,000 files),
 * so the hash goes through MurmurHash3's finalizer first.
 */
export function endsSegment(entry: Pick<TreeEntry, 'path' | 'pathBase64'>): boolean {
  let hash = FNV_OFFSET;
  for (const byte of bytesOf(entry.path, entry.pathBase64)) hash = Math.imul(hash ^ byte, FNV_PRIME);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85eb_ca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2_ae35);
  hash ^= hash >>> 16;
  return (hash & (SEGMENT_ENTRIES - 1)) === 0;
}

/** Stores a segment's bytes (a chunk put in the backup's session) and returns its id. */
export type StoreSegment = (bytes: Buffer) => Promise<ChunkId>;

/** Collects entry lines and stores them as segments; each add or the end returns the references to write, in order. */
export class TreeSegmenter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly store: StoreSegment) {}

  async add(entry: TreeEntry, line: string): Promise<TreeSegmentRef[]> {
    const bytes = Buffer.from(line, 'utf8');
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    const refs: TreeSegmentRef[] = [];
    while (this.pendingBytes > MAX_SEGMENT_BYTES) refs.push(await this.cut(MAX_SEGMENT_BYTES));
    if (this.pendingBytes > 0 && (endsSegment(entry) || this.pendingBytes >= SEGMENT_TARGET_BYTES)) refs.push(await this.cut(this.pendingBytes));
    return refs;
  }

  async end(): Promise<TreeSegmentRef[]> {
    return this.pendingBytes > 0 ? [await this.cut(this.pendingBytes)] : [];
  }

  private async cut(bytes: number): Promise<TreeSegmentRef> {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const segment = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return { segment: await this.store(segment), size: segment.length };
  }
}

/** Reads segments' plaintexts (each checked against its id by the repository), in the order asked. */
export type ReadSegments = (refs: readonly TreeSegmentRef[]) => Promise<readonly Buffer[]>;

/** Segments are read in groups (one ranged read per pack, one decode per batch, not one per segment) of about this many bytes, one group ahead. */
const GROUP_BYTES = 4 * 1024 * 1024;
const GROUP_SEGMENTS = 256;

/** The bytes of the segments, in order, read a group ahead; each checked to be as long as its reference says. */
export async function* segmentBytes(refs: AsyncIterable<TreeSegmentRef>, read: ReadSegments, onSegment?: (ref: TreeSegmentRef) => void): AsyncGenerator<Buffer> {
  const inFlight: { refs: readonly TreeSegmentRef[]; plains: Promise<readonly Buffer[]> }[] = [];
  let group: TreeSegmentRef[] = [];
  let groupBytes = 0;
  const launch = (): void => {
    const plains = read(group);
    plains.catch(() => undefined); // awaited in order below
    inFlight.push({ refs: group, plains });
    group = [];
    groupBytes = 0;
  };
  async function* emit(): AsyncGenerator<Buffer> {
    const { refs: asked, plains } = inFlight.shift()!;
    for (const [i, plain] of (await plains).entries()) {
      if (plain.length !== asked[i]!.size) throw new SegmentSizeMismatch(asked[i]!, plain.length);
      yield plain;
    }
  }
  try {
    for await (const ref of refs) {
      onSegment?.(ref);
      group.push(ref);
      groupBytes += ref.size;
      if (groupBytes < GROUP_BYTES && group.length < GROUP_SEGMENTS) continue;
      launch();
      // One group is read while the one before goes out.
      while (inFlight.length > 1) yield* emit();
    }
    if (group.length > 0) launch();
    while (inFlight.length > 0) yield* emit();
  } finally {
    await Promise.allSettled(inFlight.map((one) => one.plains));
  }
}

export class SegmentSizeMismatch extends Error {
  constructor(readonly ref: TreeSegmentRef, readonly actual: number) {
    super(`segment ${ref.segment} holds ${actual} bytes, the tree says ${ref.size}`);
  }
}
