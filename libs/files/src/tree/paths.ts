// Tree paths are bytes: names with invalid UTF-8 must come back exactly. These helpers convert
// between an entry's display/base64 pair and bytes, and define the walk order every tree uses.

/** The exact bytes of a path (or link target) stored as `text` plus an optional base64 form. */
export function bytesOf(text: string, base64: string | undefined): Buffer {
  return base64 === undefined ? Buffer.from(text, 'utf8') : Buffer.from(base64, 'base64');
}

/** The display text and, when the bytes are not valid UTF-8, their base64 form. */
export function textOf(bytes: Buffer): { text: string; base64?: string } {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? { text } : { text, base64: bytes.toString('base64') };
}

const SLASH = 0x2f;

/**
 * Walk order: depth first, siblings by the bytes of their names. Comparing segment by segment
 * makes a directory come right before its children ("a" < "a/b" < "a.txt"), which a plain byte
 * comparison of whole paths would not ("a.txt" < "a/b").
 */
export function compareTreePaths(a: Buffer, b: Buffer): number {
  let i = 0;
  let j = 0;
  for (;;) {
    const aEnd = indexOrEnd(a, i);
    const bEnd = indexOrEnd(b, j);
    const bySegment = Buffer.compare(a.subarray(i, aEnd), b.subarray(j, bEnd));
    if (bySegment !== 0) return bySegment;
    const aDone = aEnd >= a.length;
    const bDone = bEnd >= b.length;
    if (aDone || bDone) return aDone === bDone ? 0 : aDone ? -1 : 1;
    i = aEnd + 1;
    j = bEnd + 1;
  }
}

function indexOrEnd(bytes: Buffer, from: number): number {
  const at = bytes.indexOf(SLASH, from);
  return at === -1 ? bytes.length : at;
}
