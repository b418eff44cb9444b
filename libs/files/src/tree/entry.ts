// The tree: the data object of a files snapshot, compressed and encrypted like any artifact's data,
// written before the manifest, and committed by it. NDJSON: a header line, then
// - version 1: one TreeEntry per line, in walk order (see compareTreePaths);
// - version 2 (what backups write): one TreeSegmentRef per line. The entry lines of version 1, one
//   after the other, are cut into segments stored as chunks in the chunk repository (see
//   segments.ts), so that a snapshot stores again only the segments where something changed:
//   the whole tree of 20,000 files each time was most of what a second backup added.
import type { ChunkId } from '@tidemark/chunks';

export const TREE_FORMAT = 'tidemark-tree-v1';
/** What backups write; readers take 1 and 2. */
export const TREE_VERSION = 2;

/** A run of entry lines stored as one chunk (the bytes may end inside a line: the next segment goes on with it). */
export interface TreeSegmentRef {
  readonly segment: ChunkId;
  /** Its plaintext bytes. */
  readonly size: number;
}

export interface TreeHeader {
  readonly treeVersion: 1 | 2;
  readonly sourceKind: 'directory' | 's3' | 'ollama';
  readonly location: string;
  readonly createdAt: string;
}

export type TreeEntryType = 'file' | 'dir' | 'symlink' | 'hardlink';

export interface TreeEntry {
  /**
   * Relative path, '/'-separated, no leading '/', no '.' or '..' segments, never empty (the root
   * itself is not an entry). When the name's bytes are not valid UTF-8, `path` shows them with
   * U+FFFD and `pathBase64` holds the exact bytes: the bytes are what restore writes.
   */
  readonly path: string;
  readonly pathBase64?: string;
  readonly type: TreeEntryType;
  /** Permission bits with setuid/setgid/sticky (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Modification time in nanoseconds since the epoch, decimal (a float loses them). */
  readonly mtimeNs: string;
  /** file: content bytes; others 0. */
  readonly size: number;
  /** Change detection against the parent: inode and device (directory sources), ETag (s3). */
  readonly inode?: number;
  readonly device?: number;
  readonly etag?: string;
  /** file: the chunks in order, with their plaintext sizes (their offsets follow). */
  readonly chunks?: readonly { readonly id: ChunkId; readonly size: number }[];
  /** file: sha256 of the whole content (hex). Inside the encrypted tree only. */
  readonly sha256?: string;
  /** symlink: the target as stored (may dangle, may point anywhere: restore never follows it). */
  readonly linkTarget?: string;
  readonly linkTargetBase64?: string;
  /** hardlink: the path of the first entry of its link group in this tree (a 'file' entry). */
  readonly linkTo?: string;
  readonly linkToBase64?: string;
  /** The file changed while it was read (size or mtime moved): its content here may be torn. */
  readonly changedDuringBackup?: boolean;
  /** The content could not be stored as good (unreadable, digest mismatch): no chunks. */
  readonly problem?: 'unreadable' | 'digest_mismatch' | 'vanished';
}
