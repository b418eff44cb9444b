// One files backup: walk the source in tree order, merge-join it with the parent tree (also in
// tree order), read and chunk only what changed (on the codec workers: session.storeFile), and
// stream the tree out as it is made. Memory stays flat: one entry per queued read, one parent
// entry, a few chunks per read, and the hard-link groups (files with more than one link only).
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { TidemarkError, type FilesProblem, type FilesProblemKind, type FilesSourceFacts } from '@tidemark/contracts';
import { CHUNKER_ALGORITHM, type FileInput, type StoredFile, type UploadSession } from '@tidemark/chunks';
import type { SnapshotOptions, SnapshotResult } from './api.js';
import { isVanished, type SourceEntry } from '../sources/source.js';
import { TREE_VERSION, type TreeEntry } from '../tree/entry.js';
import { treeEntryLine, treeHeaderLine, treeSegmentLine } from '../tree/index.js';
import { TreeSegmenter } from '../tree/segments.js';
import { bytesOf, compareTreePaths } from '../tree/paths.js';

// Small files keep the disk busy only with several reads in flight (16 gave ~40 % more files/s than 4 on a
// 20k-file tree); each read holds up to a few chunks, so 8 keeps the worst case of big files near 160 MiB.
const DEFAULT_CONCURRENCY = 8;
/** Entries waiting to be written behind a slow read (each is small; reads themselves are bounded by `concurrency`). */
const QUEUE_LIMIT = 1024;
const MAX_PROBLEMS = 1000;
const TOUCH_EVERY_ENTRIES = 1024;

type Chunks = NonNullable<TreeEntry['chunks']>;

/** Walks the source, chunks what changed, stores new chunks, and streams the tree. */
export function takeSnapshot(options: SnapshotOptions): SnapshotResult {
  const { source, repository } = options;
  const concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  const fullRehash = options.fullRehash === true;
  const stop = new AbortController();
  let opening: Promise<UploadSession> | undefined;

  const counts = {
    files: 0, directories: 0, symlinks: 0, hardLinks: 0, totalBytes: 0, unchangedFiles: 0,
    newBytes: 0, newStoredBytes: 0, reusedBytes: 0, newChunks: 0, reusedChunks: 0, changedDuringBackupCount: 0,
  };
  const treeCounts = { segments: 0, newSegments: 0, newStoredBytes: 0 };
  const problems: FilesProblem[] = [];
  let problemsCount = 0;
  const corruptBlobs: string[] = [];
  let filesDone = 0;
  let bytesDone = 0;
  /** A strict backup fails at the first unreadable path, whether the walk or a read met it. */
  let strictFailure: TidemarkError | undefined;

  let resolveFacts!: (facts: FilesSourceFacts) => void;
  let rejectFacts!: (error: unknown) => void;
  const facts = new Promise<FilesSourceFacts>((resolve, reject) => {
    resolveFacts = resolve;
    rejectFacts = reject;
  });
  // The tree stream carries the same failure; a caller that only reads the stream must not crash on this one.
  facts.catch(() => undefined);

  function report(path: string, problem: FilesProblemKind, detail?: string): void {
    problemsCount += 1;
    if (problems.length < MAX_PROBLEMS) problems.push({ path, problem, ...(detail === undefined ? {} : { detail }) });
    if (problem === 'unreadable' && options.strict === true) {
      strictFailure ??= new TidemarkError('SOURCE_UNREADABLE', `${JSON.stringify(path)} in ${source.location} could not be read (${detail ?? 'unreadable'}) and the target is strict`);
    }
  }

  function progress(current: string): void {
    options.onProgress?.({ filesDone, bytesDone, current });
  }

  async function readFile(session: UploadSession, entry: SourceEntry, isNew: boolean): Promise<TreeEntry> {
    stop.signal.throwIfAborted();
    progress(entry.path);
    // A local file is opened and read by a codec worker; other sources stream to it.
    let input: FileInput;
    let content: Readable | undefined;
    try {
      if (source.localPath === undefined) {
        content = await source.open(entry);
        input = { stream: content, sizeHint: entry.size, eager: isNew };
      } else {
        input = { path: source.localPath(entry), sizeHint: entry.size, eager: isNew };
      }
    } catch (error) {
      return unreadFile(entry, error);
    }
    let stored: StoredFile;
    try {
      stored = await session.storeFile(input, (put, chunkBytes) => {
        if (put.stored) {
          counts.newChunks += 1;
          counts.newBytes += chunkBytes;
          counts.newStoredBytes += put.storedBytes;
        } else {
          counts.reusedChunks += 1;
          counts.reusedBytes += chunkBytes;
        }
        bytesDone += chunkBytes;
        progress(entry.path);
      }, stop.signal);
    } catch (error) {
      content?.destroy();
      return unreadFile(entry, error);
    }
    const { chunks, sha256, size } = stored;
    const after = await statAfterReading(entry, stored);
    filesDone += 1;
    counts.totalBytes += size;
    await session.touch();
    const expected = source.expectedSha256?.(entry);
    if (expected !== undefined && expected !== sha256) {
      corruptBlobs.push(`sha256:${expected}`);
      report(entry.path, 'digest_mismatch', `the content hashes to sha256:${sha256}, not to its name; not stored as good`);
      return { ...treeEntryOf(entry), size: entry.size, problem: 'digest_mismatch' };
    }
    const changed =
      after === undefined ? 'it was deleted while it was read' : after instanceof Error ? `it could not be checked after reading (${after.message})` : changedWhy(entry, after, size);
    if (changed !== undefined) {
      counts.changedDuringBackupCount += 1;
      report(entry.path, 'changed_during_backup', `${changed}; stored as read`);
    }
    // The walk's mtime, not the later one: a file caught changing is read again next time.
    return { ...treeEntryOf(entry), size, chunks, sha256, ...(changed === undefined ? {} : { changedDuringBackup: true }) };
  }

  /**
   * The file as it is once read: the worker's lstat for a local file, else the source's restat;
   * undefined when it is gone, an Error when it could not even be looked at (then it is not known to be intact).
   */
  async function statAfterReading(entry: SourceEntry, stored: StoredFile): Promise<{ size: number; mtimeNs: string; etag?: string } | Error | undefined> {
    if (stored.after === undefined) return source.restat(entry).catch((error: unknown) => error as Error);
    if (stored.after === null) return undefined;
    return 'error' in stored.after ? new Error(stored.after.error) : stored.after;
  }

  function unreadFile(entry: SourceEntry, error: unknown): TreeEntry {
    // Our own failures (the repository, a stalled S3 download, a stop) end the backup; the file's do not.
    if (error instanceof TidemarkError || stop.signal.aborted) throw error;
    const vanished = isVanished(error);
    report(entry.path, vanished ? 'vanished' : 'unreadable', error instanceof Error ? error.message : String(error));
    if (strictFailure !== undefined) throw strictFailure;
    filesDone += 1;
    return { ...treeEntryOf(entry), problem: vanished ? 'vanished' : 'unreadable' };
  }

  /** The parent's chunks for an unchanged file, when every one of them is still there to dedup against. */
  function reusable(session: UploadSession, entry: SourceEntry, previous: TreeEntry | undefined): Chunks | undefined {
    if (fullRehash || previous === undefined || previous.type !== 'file' || previous.problem !== undefined || previous.changedDuringBackup === true) return undefined;
    if (previous.size !== entry.size || previous.mtimeNs !== entry.mtimeNs || previous.inode !== entry.inode || previous.device !== entry.device || previous.etag !== entry.etag) return undefined;
    const chunks = previous.chunks ?? [];
    return chunks.every((chunk) => session.has(chunk.id)) ? chunks : undefined;
  }

  async function* treeLines(): AsyncGenerator<string> {
    const session = await (opening = repository.openSession(options.sessionId));
    const parent = parentCursor(options.parentTree);
    const linkGroups = new Map<string, Pick<TreeEntry, 'path' | 'pathBase64'>>();
    // The tree's entries go into segments stored as chunks of this session (see tree/segments.ts).
    const segmenter = new TreeSegmenter(async (bytes) => {
      const id = repository.chunkId(bytes);
      const put = await session.put(id, bytes, 'tree');
      treeCounts.segments += 1;
      if (put.stored) {
        treeCounts.newSegments += 1;
        treeCounts.newStoredBytes += put.storedBytes;
      }
      return id;
    });
    async function* segmentLines(entry: TreeEntry): AsyncGenerator<string> {
      for (const ref of await segmenter.add(entry, treeEntryLine(entry))) yield treeSegmentLine(ref);
    }
    const readSlots = slots(concurrency);
    const queue: { entry: Promise<TreeEntry>; done: boolean }[] = [];
    const enqueue = (entry: Promise<TreeEntry>): void => {
      const queued = { entry, done: false };
      entry.then(() => (queued.done = true), () => (queued.done = true));
      entry.catch(() => undefined); // surfaces when its turn to be written comes
      queue.push(queued);
    };
    let walked = 0;
    const stopReads = (): void => stop.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', stopReads);
    try {
      const inventory = await source.inventory?.();
      for (const missing of inventory?.missingLayers ?? []) report(`manifests of ${missing.model}`, 'missing_layer', `${missing.digest} has no blob`);
      for (const bad of inventory?.badManifests ?? []) report(bad.path, 'unreadable', bad.detail);
      yield treeHeaderLine({ treeVersion: TREE_VERSION, sourceKind: source.kind, location: source.location, createdAt: new Date().toISOString() });
      for await (const entry of source.entries((path, problem, detail) => report(path, problem, detail))) {
        if (strictFailure !== undefined) throw strictFailure;
        options.signal?.throwIfAborted();
        // A long run of unchanged files reads nothing: the marker must still be kept fresh (touch is throttled).
        if (++walked % TOUCH_EVERY_ENTRIES === 0) await session.touch();
        const previous = await parent.at(bytesOf(entry.path, entry.pathBase64));
        if (entry.type === 'dir') counts.directories += 1;
        else if (entry.type === 'symlink') counts.symlinks += 1;
        const linkTo = entry.linkGroup === undefined ? undefined : linkGroups.get(entry.linkGroup);
        if (entry.type !== 'file') {
          enqueue(Promise.resolve(treeEntryOf(entry)));
        } else if (linkTo !== undefined) {
          counts.hardLinks += 1;
          enqueue(Promise.resolve({ ...treeEntryOf(entry), type: 'hardlink', size: 0, linkTo: linkTo.path, ...(linkTo.pathBase64 === undefined ? {} : { linkToBase64: linkTo.pathBase64 }) }));
        } else {
          if (entry.linkGroup !== undefined) linkGroups.set(entry.linkGroup, { path: entry.path, ...(entry.pathBase64 === undefined ? {} : { pathBase64: entry.pathBase64 }) });
          counts.files += 1;
          const chunks = reusable(session, entry, previous);
          if (chunks !== undefined && previous !== undefined) {
            counts.unchangedFiles += 1;
            counts.totalBytes += entry.size;
            counts.reusedChunks += chunks.length;
            counts.reusedBytes += entry.size;
            filesDone += 1;
            bytesDone += entry.size;
            enqueue(Promise.resolve({ ...treeEntryOf(entry), chunks, ...(previous.sha256 === undefined ? {} : { sha256: previous.sha256 }) }));
          } else {
            // A file the parent lacks has new chunks, almost always: they are encoded without asking first.
            enqueue(readSlots.run(() => readFile(session, entry, previous === undefined)));
          }
        }
        while (queue.length > 0 && (queue[0]!.done || queue.length >= QUEUE_LIMIT)) yield* segmentLines(await queue.shift()!.entry);
      }
      while (queue.length > 0) yield* segmentLines(await queue.shift()!.entry);
      for (const ref of await segmenter.end()) yield treeSegmentLine(ref);
      if (strictFailure !== undefined) throw strictFailure;
      await session.flush();
      resolveFacts({
        sourceKind: source.kind,
        location: source.location,
        ...counts,
        tree: treeCounts,
        chunker: { algorithm: CHUNKER_ALGORITHM, ...repository.chunker },
        chunkIds: repository.keyed ? 'hmac-sha256' : 'sha256',
        fullRehash,
        problems,
        problemsCount,
        ...(inventory === undefined ? {} : { ollama: { models: [...inventory.models], blobs: inventory.blobs, corruptBlobs } }),
      });
    } finally {
      // Reads still running when the tree fails or is abandoned stop at their next chunk.
      options.signal?.removeEventListener('abort', stopReads);
      stop.abort();
      await Promise.allSettled(queue.map((queued) => queued.entry));
      await parent.close();
    }
  }

  const lines = treeLines();
  const tree = ReadableStream.from(
    (async function* (): AsyncGenerator<string> {
      const closedEarly = (): unknown =>
        options.signal?.aborted === true ? options.signal.reason : new TidemarkError('SHUTTING_DOWN', 'the files tree stream was closed before it ended');
      try {
        yield* lines;
      } catch (error) {
        // A reader that stops early destroys the stream with a bare AbortError.
        rejectFacts((error as { name?: unknown } | null)?.name === 'AbortError' ? closedEarly() : error);
        throw error;
      } finally {
        rejectFacts(closedEarly());
      }
    })(),
    { objectMode: false },
  );

  return {
    tree,
    facts,
    async close(): Promise<void> {
      const session = await opening?.catch(() => undefined);
      await session?.close();
    },
  };
}

/** Why the file counts as changed while it was read, or undefined when it did not move. */
function changedWhy(entry: SourceEntry, after: { size: number; mtimeNs: string; etag?: string }, bytesRead: number): string | undefined {
  if (bytesRead !== entry.size) return `${bytesRead} bytes were read where the walk saw ${entry.size}`;
  if (after.size !== entry.size) return `its size went from ${entry.size} to ${after.size}`;
  if (entry.etag !== undefined && after.etag !== undefined) return after.etag === entry.etag ? undefined : 'its ETag changed';
  if (after.mtimeNs !== entry.mtimeNs) return 'its mtime moved';
  return undefined;
}

/** A source entry as a tree entry, without what reading adds (chunks, sha256). */
function treeEntryOf(entry: SourceEntry): TreeEntry {
  const { linkGroup: _linkGroup, ...rest } = entry;
  void _linkGroup;
  return rest;
}

/** Walks the parent tree alongside the source: `at(path)` is the parent's entry for `path`, asked in walk order. */
function parentCursor(tree: AsyncIterable<TreeEntry> | undefined): { at(path: Buffer): Promise<TreeEntry | undefined>; close(): Promise<void> } {
  const iterator = tree?.[Symbol.asyncIterator]();
  let current: { entry: TreeEntry; path: Buffer } | undefined;
  let finished = iterator === undefined;
  return {
    async at(path) {
      while (!finished && (current === undefined || compareTreePaths(current.path, path) < 0)) {
        const next = await iterator!.next();
        if (next.done === true) {
          finished = true;
          current = undefined;
        } else {
          current = { entry: next.value, path: bytesOf(next.value.path, next.value.pathBase64) };
        }
      }
      return current !== undefined && compareTreePaths(current.path, path) === 0 ? current.entry : undefined;
    },
    async close() {
      if (!finished) await iterator?.return?.();
    },
  };
}

/** At most `limit` tasks at once; the others wait their turn in order. */
function slots(limit: number): { run<T>(task: () => Promise<T>): Promise<T> } {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      running += 1;
      try {
        return await task();
      } finally {
        running -= 1;
        waiting.shift()?.();
      }
    },
  };
}
