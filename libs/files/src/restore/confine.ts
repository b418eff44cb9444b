// Confinement of a restore: which entries of a tree may be written at all, judged before anything
// touches the disk. A tree is untrusted input (a forged or buggy snapshot must not write outside the
// target), so every path is checked on its own, the walk order is enforced (it makes duplicates
// adjacent and puts every ancestor on a stack), and nothing may sit below a symlink, a file or a
// refused entry. The filesystem checks at creation time (fs-confined.ts) are a second, independent line.
import { TidemarkError } from '@tidemark/contracts';
import { bytesOf, compareTreePaths } from '../tree/paths.js';
import type { TreeEntry } from '../tree/entry.js';

const SLASH = 0x2f;
const DOT = 0x2e;
const RESTORABLE_TYPES: ReadonlySet<string> = new Set(['file', 'dir', 'symlink', 'hardlink']);
const MAX_MODE = 0o7777;

/** Why a path can never be written under a root, or undefined when it can. */
export function pathProblem(bytes: Buffer): string | undefined {
  if (bytes.length === 0) return 'empty path';
  if (bytes.includes(0)) return 'NUL byte in path';
  if (bytes[0] === SLASH) return 'absolute path';
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(SLASH, start);
    const segmentEnd = end === -1 ? bytes.length : end;
    const length = segmentEnd - start;
    if (length === 0) return 'empty path segment';
    if (bytes[start] === DOT && (length === 1 || (length === 2 && bytes[start + 1] === DOT))) return `'${length === 1 ? '.' : '..'}' segment`;
    if (end === -1) return undefined;
    start = end + 1;
  }
}

/** `ancestor` is a proper ancestor directory of `path` ("a" of "a/b", not of "ab"). */
export function isAncestor(ancestor: Buffer, path: Buffer): boolean {
  return path.length > ancestor.length && path[ancestor.length] === SLASH && path.subarray(0, ancestor.length).equals(ancestor);
}

/** The entry's path bytes (exact, from pathBase64 when present). */
export function entryPath(entry: TreeEntry): Buffer {
  return bytesOf(entry.path, entry.pathBase64);
}

/** A printable form of an entry's path for refusals and errors (control characters escaped). */
export function displayPath(entry: Pick<TreeEntry, 'path'>): string {
  return JSON.stringify(entry.path);
}

/**
 * Values a writer never produces. A tree that holds them is malformed (INTEGRITY_FORMAT), not
 * hostile in the confinement sense: the restore stops rather than guessing.
 */
export function checkEntryValues(entry: TreeEntry): void {
  const bad = (what: string): never => {
    throw new TidemarkError('INTEGRITY_FORMAT', `tree entry ${displayPath(entry)}: ${what}`);
  };
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > MAX_MODE) bad(`mode ${String(entry.mode)} is not permission bits (0..0o7777)`);
  if (!isId(entry.uid) || !isId(entry.gid)) bad(`owner ${String(entry.uid)}:${String(entry.gid)} is not a pair of ids`);
  if (typeof entry.mtimeNs !== 'string' || !/^-?\d{1,30}$/.test(entry.mtimeNs)) bad(`mtimeNs ${JSON.stringify(entry.mtimeNs)} is not a decimal integer`);
  if (entry.type === 'file' && entry.problem === undefined) {
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) bad(`size ${String(entry.size)} is not a byte count`);
    let total = 0;
    for (const chunk of entry.chunks ?? []) {
      if (typeof chunk.id !== 'string' || !/^[0-9a-f]{64}$/.test(chunk.id) || !Number.isSafeInteger(chunk.size) || chunk.size <= 0) bad('a chunk is not {id: 64 hex, size > 0}');
      total += chunk.size;
    }
    if (total !== entry.size) bad(`its chunks hold ${total} bytes, its size says ${entry.size}`);
  }
}

const isId = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_fffe;

export type Admission = { readonly ok: true; readonly path: Buffer } | { readonly ok: false; readonly path: Buffer; readonly reason: string };

/**
 * Admits the entries of one tree in the order they come. An entry is refused when its path could
 * leave the root, it is not in walk order (a duplicate, or out of place), its type is not one a
 * restore creates (devices, fifos, sockets: never), or an ancestor in the tree is not a directory
 * (a symlink, a file) or was itself refused.
 */
export class TreeConfinement {
  private previous: Buffer | undefined;
  private readonly ancestors: { readonly path: Buffer; readonly kind: string }[] = [];

  admit(entry: TreeEntry): Admission {
    const path = typeof entry.path === 'string' ? entryPath(entry) : Buffer.alloc(0);
    const problem = pathProblem(path);
    if (problem !== undefined) return { ok: false, path, reason: problem };
    if (this.previous !== undefined) {
      const order = compareTreePaths(this.previous, path);
      if (order === 0) return { ok: false, path, reason: 'duplicate path' };
      if (order > 0) return { ok: false, path, reason: 'out of walk order (after a path that sorts later)' };
    }
    this.previous = path;
    while (this.ancestors.length > 0 && !isAncestor(this.ancestors[this.ancestors.length - 1]!.path, path)) this.ancestors.pop();
    const parent = this.ancestors[this.ancestors.length - 1];
    const refuse = (reason: string): Admission => {
      this.ancestors.push({ path, kind: 'refused' });
      return { ok: false, path, reason };
    };
    if (parent !== undefined && parent.kind !== 'dir') {
      return refuse(parent.kind === 'refused' ? 'an ancestor was refused' : `an ancestor is a ${parent.kind}, not a directory`);
    }
    if (!RESTORABLE_TYPES.has(entry.type)) return refuse(`type ${JSON.stringify(entry.type)} is never restored (devices, fifos and sockets are not created)`);
    if (entry.type === 'symlink') {
      if (typeof entry.linkTarget !== 'string') return refuse('symlink without a target');
      if (bytesOf(entry.linkTarget, entry.linkTargetBase64).includes(0)) return refuse('NUL byte in symlink target');
    }
    if (entry.type === 'hardlink') {
      if (typeof entry.linkTo !== 'string') return refuse('hard link without linkTo');
      const linkTo = bytesOf(entry.linkTo, entry.linkToBase64);
      const linkProblem = pathProblem(linkTo);
      if (linkProblem !== undefined) return refuse(`hard link target: ${linkProblem}`);
      if (compareTreePaths(linkTo, path) >= 0) return refuse('hard link target does not come before the link in the tree');
    }
    this.ancestors.push({ path, kind: entry.type });
    return { ok: true, path };
  }
}

/** The `paths` option: an entry is selected when it is one of them or below one. */
export class PathSelection {
  private readonly roots: readonly Buffer[];
  private readonly matched = new Set<number>();

  constructor(paths: readonly string[]) {
    this.roots = paths.map((text) => {
      const bytes = Buffer.from(text.replace(/^\/+|\/+$/g, ''), 'utf8');
      const problem = pathProblem(bytes);
      if (problem !== undefined) throw new TidemarkError('COMMAND_INVALID', `restore path ${JSON.stringify(text)}: ${problem}`);
      return bytes;
    });
  }

  /** Whether `path` is selected; `record` counts it as a match of the requested paths (an entry, not a link's target). */
  selects(path: Buffer, record = true): boolean {
    let selected = false;
    this.roots.forEach((root, index) => {
      if (root.equals(path) || isAncestor(root, path)) {
        if (record) this.matched.add(index);
        selected = true;
      }
    });
    return selected;
  }

  /** A directory above a selected path: created (with its own metadata when the tree has it). */
  leadsTo(path: Buffer): boolean {
    return this.roots.some((root) => isAncestor(path, root));
  }

  /** The requested paths no entry matched (after a full pass). */
  unmatched(): string[] {
    return this.roots.filter((_root, index) => !this.matched.has(index)).map((root) => root.toString('utf8'));
  }
}

/** A Map key for path bytes (latin1 maps every byte to one character, so it is exact). */
export const pathKey = (bytes: Buffer): string => bytes.toString('latin1');
