// Trees for the restore tests, built directly as TreeEntry arrays: file contents are cut into
// chunks stored in a MemoryChunkRepository; everything else is plain metadata.
import { createHash } from 'node:crypto';
import type { TreeEntry } from '@tidemark/files';
import { compareTreePaths, bytesOf, textOf } from '@tidemark/files';
import type { MemoryChunkRepository } from './memory-chunk-repository.js';

/** 2024-05-06T07:08:09.123456789Z: nanoseconds that a float would lose. */
export const MTIME_NS = '1714979289123456789';

type Meta = Partial<Pick<TreeEntry, 'mode' | 'uid' | 'gid' | 'mtimeNs'>>;
const meta = (defaultMode: number, given: Meta): Pick<TreeEntry, 'mode' | 'uid' | 'gid' | 'mtimeNs'> => ({
  mode: given.mode ?? defaultMode,
  uid: given.uid ?? 0,
  gid: given.gid ?? 0,
  mtimeNs: given.mtimeNs ?? MTIME_NS,
});

/** Path fields for text or exact bytes (invalid UTF-8 gets pathBase64). */
function pathOf(path: string | Buffer): Pick<TreeEntry, 'path' | 'pathBase64'> {
  if (typeof path === 'string') return { path };
  const { text, base64 } = textOf(path);
  return base64 === undefined ? { path: text } : { path: text, pathBase64: base64 };
}

export class TreeBuilder {
  readonly entries: TreeEntry[] = [];

  constructor(
    private readonly repository: MemoryChunkRepository,
    /** Chunk size of this fixed-size chunker; small, so multi-chunk files stay small. */
    private readonly chunkBytes = 64 * 1024,
  ) {}

  file(path: string | Buffer, content: Buffer | string, given: Meta = {}): this {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const chunks: { id: string; size: number }[] = [];
    for (let at = 0; at < bytes.length; at += this.chunkBytes) {
      const piece = bytes.subarray(at, Math.min(bytes.length, at + this.chunkBytes));
      chunks.push({ id: this.repository.store(piece), size: piece.length });
    }
    return this.push({ ...pathOf(path), type: 'file', ...meta(0o644, given), size: bytes.length, chunks, sha256: sha256(bytes) });
  }

  /** A file of `size` zeros, cut like the real chunker cuts zeros (maxBytes chunks), never held whole. */
  zeros(path: string, size: number, given: Meta = {}): this {
    const max = this.repository.chunker.maxBytes;
    const full = this.repository.store(Buffer.alloc(max));
    const chunks: { id: string; size: number }[] = [];
    const hash = createHash('sha256');
    const block = Buffer.alloc(max);
    for (let at = 0; at < size; at += max) {
      const length = Math.min(max, size - at);
      chunks.push({ id: length === max ? full : this.repository.store(Buffer.alloc(length)), size: length });
      hash.update(block.subarray(0, length));
    }
    return this.push({ path, type: 'file', ...meta(0o644, given), size, chunks, sha256: hash.digest('hex') });
  }

  dir(path: string | Buffer, given: Meta = {}): this {
    return this.push({ ...pathOf(path), type: 'dir', ...meta(0o755, given), size: 0 });
  }

  symlink(path: string | Buffer, target: string | Buffer, given: Meta = {}): this {
    const link = pathOf(target);
    return this.push({ ...pathOf(path), type: 'symlink', ...meta(0o777, given), size: 0, linkTarget: link.path, ...(link.pathBase64 === undefined ? {} : { linkTargetBase64: link.pathBase64 }) });
  }

  hardlink(path: string | Buffer, linkTo: string | Buffer, given: Meta = {}): this {
    const to = pathOf(linkTo);
    const first = this.entries.find((entry) => entry.path === to.path && entry.type === 'file');
    return this.push({ ...pathOf(path), type: 'hardlink', ...meta(first?.mode ?? 0o644, { mtimeNs: first?.mtimeNs ?? MTIME_NS, ...given }), size: 0, linkTo: to.path, ...(to.pathBase64 === undefined ? {} : { linkToBase64: to.pathBase64 }) });
  }

  /** Any entry as given (hostile trees). */
  raw(entry: Record<string, unknown>): this {
    this.entries.push(entry as unknown as TreeEntry);
    return this;
  }

  private push(entry: TreeEntry): this {
    this.entries.push(entry);
    return this;
  }

  /** The entries in walk order (hostile tests keep their own order with `asGiven`). */
  sorted(): TreeEntry[] {
    return [...this.entries].sort((a, b) => compareTreePaths(bytesOf(a.path, a.pathBase64), bytesOf(b.path, b.pathBase64)));
  }

  tree(order: 'walk' | 'asGiven' = 'walk'): () => AsyncIterable<TreeEntry> {
    const entries = order === 'walk' ? this.sorted() : [...this.entries];
    this.repository.seal();
    return () => iterate(entries);
  }
}

async function* iterate(entries: readonly TreeEntry[]): AsyncIterable<TreeEntry> {
  for (const entry of entries) yield entry;
}

export const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
