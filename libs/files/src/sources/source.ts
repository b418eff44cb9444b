// Where a files target's content comes from. A source yields entries in walk order (see
// compareTreePaths) with what change detection needs, and opens a file's content as a stream.
import type { Readable } from 'node:stream';
import type { OllamaModel } from '@tidemark/contracts';
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
  /**
   * A local file's absolute path, for a codec worker to open and read itself (as open() would:
   * never through a symlink, a regular file only) and lstat again after reading (as restat()).
   */
  localPath?(entry: SourceEntry): Buffer;
  /**
   * The entry's current size and mtime (after reading), or undefined when it vanished. S3 also
   * gives the ETag, which then decides: HEAD's Last-Modified has whole seconds, a listing's has milliseconds.
   */
  restat(entry: SourceEntry): Promise<{ size: number; mtimeNs: string; etag?: string } | undefined>;
  /** The sha256 (hex) a file's content must have, when its name says (Ollama blobs): a mismatch is never stored as good. */
  expectedSha256?(entry: SourceEntry): string | undefined;
  /** Releases connections (s3); the caller closes the source it opened. */
  close?(): Promise<void>;
  /** Ollama: the model inventory, read from the manifests when the backup starts. */
  inventory?(): Promise<OllamaInspection>;
}

export interface OllamaInspection {
  readonly models: readonly OllamaModel[];
  readonly blobs: number;
  /** Blobs whose content does not hash to their name, as digests ("sha256:<hex>"); empty unless blobs were hashed. */
  readonly corruptBlobs: readonly string[];
  /** Layers (digests) a manifest names that have no blob. */
  readonly missingLayers: readonly { readonly model: string; readonly digest: string }[];
  /** Manifests that could not be read or parsed (path relative to the models directory). */
  readonly badManifests: readonly { readonly path: string; readonly detail: string }[];
}

/** The file went away (or stopped being a regular file) between the walk and its reading. */
export class SourceFileVanished extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceFileVanished';
  }
}

/** Whether a failure to open or read a file means it is gone rather than unreadable. */
export function isVanished(error: unknown): boolean {
  if (error instanceof SourceFileVanished) return true;
  const code = (error as { code?: unknown } | null)?.code;
  // ELOOP: O_NOFOLLOW met a symlink where the file was; ENOTREG: something else took its place.
  return code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTREG' || code === 'NoSuchKey' || code === 'NotFound';
}
