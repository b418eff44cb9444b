// The tree's NDJSON form: writing lines, and reading them back lazily (one line in memory at a
// time, whatever the tree's size), each checked before anyone acts on it.
import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { TreeEntry, TreeHeader } from './entry.js';
import { bytesOf, compareTreePaths } from './paths.js';
import { checkTreeEntry, checkTreeHeader } from './validate.js';

/** A line longer than this is not a tree (a 4 TiB file of 256 KiB chunks is ~1.5 GiB of line; 1 MiB chunks average ~0.4 GiB). */
const MAX_LINE_BYTES = 512 * 1024 * 1024;
const NEWLINE = 0x0a;

/** The header line (with its newline). */
export function treeHeaderLine(header: TreeHeader): string {
  return `${JSON.stringify(header)}\n`;
}

/** One entry's line (with its newline). JSON escapes newlines inside names, so one entry is always one line. */
export function treeEntryLine(entry: TreeEntry): string {
  return `${JSON.stringify(entry)}\n`;
}

/** Parses a decoded tree (NDJSON) lazily: the header, then entries in walk order. INTEGRITY_FORMAT on a malformed line. */
export function parseTree(decoded: Readable | AsyncIterable<Uint8Array>): { header: Promise<TreeHeader>; entries: AsyncIterable<TreeEntry> } {
  const lines = linesOf(decoded);
  const header = lines.next().then((first) => {
    if (first.done === true) throw malformed(1, 'the tree is empty (no header line)');
    const checked = checkTreeHeader(parseJson(first.value, 1));
    if (typeof checked === 'string') throw malformed(1, checked);
    return checked;
  });
  // Whoever iterates `entries` learns a bad header from there; awaiting `header` is optional.
  header.catch(() => undefined);
  async function* entries(): AsyncGenerator<TreeEntry> {
    await header;
    let lineNumber = 1;
    let previous: Buffer | undefined;
    try {
      for (;;) {
        const next = await lines.next();
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
