// The tree's NDJSON form: writing lines, and reading them back lazily (one line in memory at a
// time, or a few segments of a version 2 tree, whatever the tree's size), each checked before
// anyone acts on it.
import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { TreeEntry, TreeHeader, TreeSegmentRef } from './entry.js';
import { bytesOf, compareTreePaths } from './paths.js';
import { SegmentSizeMismatch, segmentBytes, type ReadSegments } from './segments.js';
import { checkSegmentRef, checkTreeEntry, checkTreeHeader } from './validate.js';

/** A line longer than this is not a tree (a 4 TiB file of 256 KiB chunks is ~1.5 GiB of line; 1 MiB chunks average ~0.4 GiB). */
const MAX_LINE_BYTES = 512 * 1024 * 1024;
const NEWLINE = 0x0a;

/** The header line (with its newline). */
export function treeHeaderLine(header: TreeHeader): string {
  return `${JSON.stringify(header)}\n`;
}

/**
 * One entry's line (with its newline), its fields always in one order: an unchanged file must
 * give the same bytes in every snapshot, or its segment would not deduplicate (see segments.ts).
 * JSON escapes newlines inside names, so one entry is always one line.
 */
export function treeEntryLine(entry: TreeEntry): string {
  const ordered: Record<string, unknown> = {};
  for (const field of ENTRY_FIELDS) {
    const value = entry[field];
    if (value !== undefined) ordered[field] = field === 'chunks' ? entry.chunks!.map(({ id, size }) => ({ id, size })) : value;
  }
  return `${JSON.stringify(ordered)}\n`;
}

const ENTRY_FIELDS = [
  'path', 'pathBase64', 'type', 'mode', 'uid', 'gid', 'mtimeNs', 'size', 'inode', 'device', 'etag', 'chunks', 'sha256',
  'linkTarget', 'linkTargetBase64', 'linkTo', 'linkToBase64', 'changedDuringBackup', 'problem',
] as const satisfies readonly (keyof TreeEntry)[];

/** A segment reference's line (version 2 trees). */
export function treeSegmentLine(ref: TreeSegmentRef): string {
  return `${JSON.stringify({ segment: ref.segment, size: ref.size })}\n`;
}

export interface ParseTreeOptions {
  /** Reads a version 2 tree's segments (from the chunk repository). */
  readonly readSegments?: ReadSegments;
  /** Told every segment a version 2 tree references (the garbage collector keeps them). */
  readonly onSegment?: (ref: TreeSegmentRef) => void;
}

/**
 * Parses a decoded tree lazily: the header, then entries in walk order (a version 2 tree's read
 * from its segments). INTEGRITY_FORMAT on a malformed line.
 */
export function parseTree(decoded: Readable | AsyncIterable<Uint8Array>, options: ParseTreeOptions = {}): { header: Promise<TreeHeader>; entries: AsyncIterable<TreeEntry> } {
  const lines = linesOf(decoded);
  const header = lines.next().then((first) => {
    if (first.done === true) throw malformed(1, 'the tree is empty (no header line)');
    const checked = checkTreeHeader(parseJson(first.value, 1));
    if (typeof checked === 'string') throw malformed(1, checked);
    return checked;
  });
  // Whoever iterates `entries` learns a bad header from there; awaiting `header` is optional.
  header.catch(() => undefined);
  async function* segmentRefs(): AsyncGenerator<TreeSegmentRef> {
    let lineNumber = 1;
    for (;;) {
      const next = await lines.next();
      if (next.done === true) return;
      lineNumber += 1;
      const ref = checkSegmentRef(parseJson(next.value, lineNumber));
      if (typeof ref === 'string') throw malformed(lineNumber, ref);
      yield ref;
    }
  }
  async function* entries(): AsyncGenerator<TreeEntry> {
    const { treeVersion } = await header;
    let entryLines: AsyncGenerator<Buffer, void, undefined> = lines;
    if (treeVersion === 2) {
      if (options.readSegments === undefined) throw new TidemarkError('INTERNAL', 'a version 2 files tree is read through the chunk repository, and none was given');
      entryLines = linesOf(segmentBytes(segmentRefs(), options.readSegments, options.onSegment));
    }
    // Version 1: line numbers of the object; version 2: of the entry lines its segments hold.
    let lineNumber = treeVersion === 1 ? 1 : 0;
    let previous: Buffer | undefined;
    try {
      for (;;) {
        let next: IteratorResult<Buffer, void>;
        try {
          next = await entryLines.next();
        } catch (error) {
          if (error instanceof SegmentSizeMismatch) throw new TidemarkError('INTEGRITY_FORMAT', `files tree: ${error.message}; the snapshot's tree is damaged`);
          throw error;
        }
        if (next.done === true) return;
        lineNumber += 1;
        const entry = checkTreeEntry(parseJson(next.value, lineNumber));
        if (typeof entry === 'string') throw malformed(lineNumber, entry);
        const path = bytesOf(entry.path, entry.pathBase64);
        if (previous !== undefined && compareTreePaths(previous, path) >= 0) throw malformed(lineNumber, `${JSON.stringify(entry.path)} is out of walk order or repeated`);
        previous = path;
        yield entry;
      }
    } finally {
      await entryLines.return(undefined);
      await lines.return(undefined);
    }
  }
  return { header, entries: entries() };
}

function parseJson(line: Buffer, lineNumber: number): unknown {
  try {
    return JSON.parse(line.toString('utf8')) as unknown;
  } catch (error) {
    throw malformed(lineNumber, `not JSON (${(error as Error).message})`);
  }
}

function malformed(lineNumber: number, what: string): TidemarkError {
  return new TidemarkError('INTEGRITY_FORMAT', `files tree line ${lineNumber}: ${what}`);
}

/** Newline-terminated lines as buffers (the last may lack its newline). */
async function* linesOf(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNumber = 0;
  for await (const piece of source) {
    let bytes = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    for (;;) {
      const end = bytes.indexOf(NEWLINE);
      if (end === -1) break;
      const line = pending.length === 0 ? bytes.subarray(0, end) : Buffer.concat([...pending, bytes.subarray(0, end)]);
      pending = [];
      pendingBytes = 0;
      lineNumber += 1;
      yield line;
      bytes = bytes.subarray(end + 1);
    }
    if (bytes.length > 0) {
      pending.push(bytes);
      pendingBytes += bytes.length;
      if (pendingBytes > MAX_LINE_BYTES) throw malformed(lineNumber + 1, `longer than ${MAX_LINE_BYTES} bytes`);
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}
