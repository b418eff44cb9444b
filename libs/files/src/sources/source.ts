// Where a files target's content comes from. A source yields entries in walk order (see
// compareTreePaths) with what change detection needs, and opens a file's content as a stream.
import type { Readable } from 'node:stream';
import type { TreeEntry } from '../tree/entry.js';

export type FilesSourceConfig =
  | {
      readonly kind: 'directory';
      readonly path: string;
      /** Globs (picomatch) relative to `path`; a file is taken when it matches an include (or none are given) and no exclude. */
      readonly include?: readonly string[];
      readonly exclude?: readonly string[];
    }
  | {
      readonly kind: 's3';
      readonly endpoint: string;
      readonly region?: string;
      readonly bucket: string;
      readonly prefix?: string;
      readonly accessKey: string;
      readonly secretKey: string;
    }
  | {
      /** An Ollama models directory (the one holding manifests/ and blobs/). */
      readonly kind: 'ollama';
      readonly path: string;
    };

/** An entry as the source sees it, before chunking: no chunks, sha256 or hard-link resolution yet. */
export type SourceEntry = Omit<TreeEntry, 'chunks' | 'sha256' | 'linkTo' | 'linkToBase64' | 'changedDuringBackup' | 'problem'> & {
  /** Hard-link group key (device:inode) when the file has more than one link. */
  readonly linkGroup?: string;
};

export interface FilesSource {
  readonly kind: FilesSourceConfig['kind'];
  /** For manifests and logs: a path or s3://bucket/prefix, never credentials. */
  readonly location: string;
  /** Every entry in walk order. Unreadable directories are reported through `onProblem`, not thrown. */
  entries(onProblem: (path: string, problem: 'unreadable' | 'unsupported_type' | 'vanished', detail: string) => void): AsyncIterable<SourceEntry>;
  /** A file's content. Its size and mtime are checked again after reading to catch changes. */
  open(entry: SourceEntry): Promise<Readable>;
  /** The entry's current size and mtime (after reading), or undefined when it vanished. */
  restat(entry: SourceEntry): Promise<{ size: number; mtimeNs: string } | undefined>;
}
