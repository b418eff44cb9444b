// What a tree line must hold. A tree comes back from storage after decryption, so a mismatch here
// means a bug or a crafted tree: restore and the snapshotter's merge-join rely on every rule below
// (paths that stay inside the target, chunk sizes that add up, walk order).
import { array, boolean, checkedString, isoDate, number, object, oneOf, optional, SchemaError, string, type Schema } from '@tidemark/contracts';
import type { TreeEntry, TreeHeader, TreeSegmentRef } from './entry.js';
import { MAX_SEGMENT_BYTES } from './segments.js';
import { bytesOf, textOf } from './paths.js';

const HEX64 = /^[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const count = number({ integer: true, min: 0 });
const base64 = string({ pattern: BASE64, hint: 'must be base64' });

export const TreeHeaderSchema = object({
  treeVersion: number({ integer: true, min: 1, max: 2 }),
  sourceKind: oneOf(['directory', 's3', 'ollama'] as const),
  location: string(),
  createdAt: isoDate(),
});

export const TreeEntrySchema = object(
  {
    path: string({ min: 1 }),
    pathBase64: optional(base64),
    type: oneOf(['file', 'dir', 'symlink', 'hardlink'] as const),
    mode: number({ integer: true, min: 0, max: 0o7777 }),
    uid: count,
    gid: count,
    mtimeNs: checkedString((value) => (DECIMAL.test(value) ? undefined : 'must be a decimal number of nanoseconds')),
    size: count,
    inode: optional(count),
    device: optional(count),
    etag: optional(string()),
    chunks: optional(array(object({ id: string({ pattern: HEX64, hint: 'must be 64 lowercase hex' }), size: number({ integer: true, min: 1 }) }))),
    sha256: optional(string({ pattern: HEX64, hint: 'must be 64 lowercase hex' })),
    linkTarget: optional(string()),
    linkTargetBase64: optional(base64),
    linkTo: optional(string({ min: 1 })),
    linkToBase64: optional(base64),
    changedDuringBackup: optional(boolean()),
    problem: optional(oneOf(['unreadable', 'digest_mismatch', 'vanished'] as const)),
  },
  { strict: true },
);

/** A version 2 tree's line: a segment of at most MAX_SEGMENT_BYTES (see segments.ts). */
export const TreeSegmentRefSchema = object(
  {
    segment: string({ pattern: HEX64, hint: 'must be 64 lowercase hex' }),
    size: number({ integer: true, min: 1, max: MAX_SEGMENT_BYTES }),
  },
  { strict: true },
);

/** `value` as `schema` reads it, or a message saying what is wrong with it. */
function parsedOrWhy<T>(schema: Schema<unknown>, value: unknown): T | string {
  try {
    return schema.parse(value) as T;
  } catch (error) {
    if (error instanceof SchemaError) return error.message;
    throw error;
  }
}

/** The segment reference, or a message saying what is wrong with it. */
export const checkSegmentRef = (value: unknown): TreeSegmentRef | string => parsedOrWhy<TreeSegmentRef>(TreeSegmentRefSchema, value);

/** The header line's value, or a message saying what is wrong with it. */
export const checkTreeHeader = (value: unknown): TreeHeader | string => parsedOrWhy<TreeHeader>(TreeHeaderSchema, value);

/** The entry, or a message saying what is wrong with it. */
export function checkTreeEntry(value: unknown): TreeEntry | string {
  const entry = parsedOrWhy<TreeEntry>(TreeEntrySchema, value);
  if (typeof entry === 'string') return entry;
  const pathProblem = checkRelativePath(entry.path, entry.pathBase64);
  if (pathProblem !== undefined) return `path ${pathProblem}`;
  if (entry.linkTarget !== undefined && textOf(bytesOf(entry.linkTarget, entry.linkTargetBase64)).text !== entry.linkTarget) return 'linkTargetBase64 does not match linkTarget';
  if (entry.type !== 'file' && entry.chunks !== undefined) return `a ${entry.type} has no chunks`;
  switch (entry.type) {
    case 'file': {
      if (entry.chunks === undefined) return entry.problem !== undefined || entry.size === 0 ? entry : 'a file without a problem needs chunks';
      if (entry.problem !== undefined) return `a file with the problem ${entry.problem} has no chunks`;
      let total = 0;
      for (const chunk of entry.chunks) total += chunk.size;
      return total === entry.size ? entry : `chunk sizes add up to ${total}, not the size ${entry.size}`;
    }
    case 'symlink':
      return entry.linkTarget === undefined ? 'a symlink needs linkTarget' : entry;
    case 'hardlink': {
      if (entry.linkTo === undefined) return 'a hardlink needs linkTo';
      const linkProblem = checkRelativePath(entry.linkTo, entry.linkToBase64);
      return linkProblem === undefined ? entry : `linkTo ${linkProblem}`;
    }
    case 'dir':
      return entry;
  }
}

/** Why `text` (with its exact bytes in `base64`) is not a relative tree path, or undefined when it is one. */
export function checkRelativePath(text: string, base64: string | undefined): string | undefined {
  const bytes = bytesOf(text, base64);
  if (base64 !== undefined && textOf(bytes).text !== text) return 'does not match its base64 form';
  if (bytes.includes(0)) return 'holds a NUL byte';
  for (const segment of bytes.toString('latin1').split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return 'must be relative, without empty, "." or ".." segments';
  }
  return undefined;
}
