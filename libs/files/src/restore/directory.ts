// restoreToDirectory: one pass over the tree in walk order. Directories are made as they come
// (private until the end), files are written in batches grouped by pack (file-batch.ts), and
// hard links, then symlinks, are made after every file; directory modes and mtimes come last,
// deepest first. What is held in memory grows with directories and links, never with files.
import { link, lchown, lutimes, chmod, symlink } from 'node:fs/promises';
import { TidemarkError } from '@tidemark/contracts';
import type { ChunkId } from '@tidemark/chunks';
import type { TreeEntry } from '../tree/entry.js';
import { bytesOf } from '../tree/paths.js';
import type { RestoreSummary, RestoreToDirectoryOptions } from './api.js';
import { checkEntryValues, PathSelection, pathKey, TreeConfinement } from './confine.js';
import { FileBatch, removeTemps, throwIfAborted, writeBatch, type BatchWriter, type PendingFile } from './file-batch.js';
import { ConfinedRoot, Refusal } from './fs-confined.js';
import { linkTargetsToKeep } from './link-targets.js';
import { secondsOf } from './metadata.js';
import { ProgressReporter } from './progress.js';
import { RestoreRefusedError, asRestoreError, type Refused, type Skipped } from './errors.js';
import { placeTarget } from './target.js';

const DEFAULT_CONCURRENCY = 8;
/** Directories stay writable by us while the restore fills them; their modes are set at the end. */
const WORKING_DIRECTORY_MODE = 0o700;

/**
 * Restores a tree (or chosen paths) into a directory, confined to it. Entries the confinement
 * refuses are never written; everything else is restored, and then the restore fails with
 * RESTORE_PATH_REFUSED (RestoreRefusedError, with the summary), rolling back an overwrite.
 */
export async function restoreToDirectory(options: RestoreToDirectoryOptions): Promise<RestoreSummary> {
  const owners = options.owners ?? process.getuid?.() === 0;
  const selection = options.paths !== undefined && options.paths.length > 0 ? new PathSelection(options.paths) : undefined;
  throwIfAborted(options.signal);
  try {
    const keep = selection === undefined ? new Set<string>() : await linkTargetsToKeep(options.tree(), selection, false);
    const target = await placeTarget(options.intoDirectory, options.overwrite === true, owners);
    let summary: RestoreSummary;
    try {
      summary = await restoreInto(target.directory, options, owners, selection, keep);
    } catch (error) {
      await rollBack(() => target.rollback(false), error, target.movedAside);
      throw error;
    }
    if (summary.refused.length > 0) {
      await rollBack(() => target.rollback(true), undefined, target.movedAside);
      throw new RestoreRefusedError(summary, target.movedAside !== undefined ? 'the previous tree is back in place' : 'everything else was restored');
    }
    await target.commit();
    return summary;
  } catch (error) {
    throw asRestoreError(error);
  }
}

async function rollBack(undo: () => Promise<void>, failure: unknown, movedAside: string | undefined): Promise<void> {
  try {
    await undo();
  } catch (error) {
    const where = movedAside === undefined ? '' : `; the previous tree is at ${movedAside}`;
    throw new TidemarkError('RESTORE_FAILED', `the restore failed and undoing it failed too (${error instanceof Error ? error.message : String(error)})${where}`, { cause: failure ?? error });
  }
}

interface Deferred {
  readonly relative: Buffer;
  readonly entry: TreeEntry;
}

async function restoreInto(directory: string, options: RestoreToDirectoryOptions, owners: boolean, selection: PathSelection | undefined, keep: ReadonlySet<string>): Promise<RestoreSummary> {
  const { repository, signal } = options;
  const root = new ConfinedRoot(directory);
  const refused: Refused[] = [];
  const skipped: Skipped[] = [];
  const directories: Deferred[] = [];
  const symlinks: Deferred[] = [];
  const hardlinks: (Deferred & { readonly linkTo: Buffer })[] = [];
  /** First entries of hard links outside the selection (their content), and where they were restored. */
  const keptFirsts = new Map<string, TreeEntry>();
  const restoredAt = new Map<string, Buffer>();
  /** Files the backup could not store as good: their hard links are skipped with them. */
  const notStored = new Map<string, string>();
  const counts = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0 };
  const progress = new ProgressReporter(options.onProgress);
  const writer: BatchWriter = {
    repository,
    root,
    owners,
    concurrency: Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY),
    zeroChunks: zeroChunkIds(repository),
    signal,
    temps: new Set(),
    onFileDone: (file: PendingFile) => {
      counts.files += 1;
      counts.bytes += file.entry.size;
      progress.fileDone(file.entry.size, file.entry.path);
    },
  };
  const refuse = (entry: Pick<TreeEntry, 'path'>, reason: string): void => void refused.push({ path: String(entry.path), reason });
  let batch = new FileBatch();
  /**
   * Batches being written: two at once, so that the codec workers are kept busy by the next batch
   * while the last packs of one are read and its last files finished (one at a time, each batch's
   * tail left them idle).
   */
  const writing: Promise<void>[] = [];
  const startBatch = (full: FileBatch): void => {
    const written = writeBatch(full, writer);
    written.catch(() => undefined); // awaited in order
    writing.push(written);
  };
  const addFile = async (relative: Buffer, entry: TreeEntry): Promise<void> => {
    batch.add(root, relative, entry);
    if (batch.full) {
      startBatch(batch);
      batch = new FileBatch();
      while (writing.length > 1) await writing.shift();
    }
  };

  try {
    const confinement = new TreeConfinement();
    for await (const entry of options.tree()) {
      throwIfAborted(signal);
      const admission = confinement.admit(entry);
      const relative = admission.path;
      if (selection !== undefined && !selection.selects(relative)) {
        if (!admission.ok) continue;
        if (entry.type === 'file' && keep.has(pathKey(relative))) keptFirsts.set(pathKey(relative), entry);
        if (!(entry.type === 'dir' && selection.leadsTo(relative))) continue;
      }
      if (!admission.ok) {
        refuse(entry, admission.reason);
        continue;
      }
      checkEntryValues(entry);
      try {
        switch (entry.type) {
          case 'dir':
            await root.ensureParents(relative);
            await root.ensureDirectory(relative, WORKING_DIRECTORY_MODE);
            directories.push({ relative, entry });
            break;
          case 'file':
            if (entry.problem !== undefined) {
              skipped.push({ path: entry.path, reason: `not stored as good: ${entry.problem}` });
              notStored.set(pathKey(relative), entry.problem);
              break;
            }
            await root.ensureParents(relative);
            await addFile(relative, entry);
            break;
          case 'symlink':
            symlinks.push({ relative, entry });
            break;
          case 'hardlink': {
            const linkTo = bytesOf(entry.linkTo ?? '', entry.linkToBase64);
            const key = pathKey(linkTo);
            const problem = notStored.get(key);
            if (problem !== undefined) {
              skipped.push({ path: entry.path, reason: `hard link to a file not stored as good: ${problem}` });
              break;
            }
            if (!keep.has(key)) {
              hardlinks.push({ relative, entry, linkTo });
              break;
            }
            const already = restoredAt.get(key);
            if (already !== undefined) {
              hardlinks.push({ relative, entry, linkTo: already });
              break;
            }
            const first = keptFirsts.get(key);
            if (first === undefined) throw new Refusal('the hard link target is not a file of the snapshot');
            if (first.problem !== undefined) {
              skipped.push({ path: entry.path, reason: `hard link to a file not stored as good: ${first.problem}` });
              break;
            }
            checkEntryValues(first);
            // The first path is outside the selected paths: the link's own path gets the content.
            restoredAt.set(key, relative);
            await root.ensureParents(relative);
            await addFile(relative, { ...first, path: entry.path, ...(entry.pathBase64 === undefined ? {} : { pathBase64: entry.pathBase64 }) });
            break;
          }
        }
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        refuse(entry, error.message);
      }
    }
    startBatch(batch);
    while (writing.length > 0) await writing.shift();
  } catch (error) {
    // A batch still being written must end before its temp files go.
    await Promise.allSettled(writing);
    await removeTemps(writer.temps);
    throw error;
  }

  for (const { relative, entry, linkTo } of hardlinks) {
    throwIfAborted(signal);
    await refusingOn(entry, refuse, async () => {
      await root.ensureParents(relative, true);
      await root.requireRestoredFile(linkTo);
      await link(root.absolute(linkTo), root.absolute(relative));
      counts.hardlinks += 1;
    });
  }
  for (const { relative, entry } of symlinks) {
    throwIfAborted(signal);
    await refusingOn(entry, refuse, async () => {
      await root.ensureParents(relative, true);
      const path = root.absolute(relative);
      await symlink(bytesOf(entry.linkTarget ?? '', entry.linkTargetBase64), path);
      if (owners) await lchown(path, entry.uid, entry.gid);
      const seconds = secondsOf(entry);
      await lutimes(path, seconds, seconds);
      counts.symlinks += 1;
    });
  }
  // Deepest first (reverse walk order): a directory's mtime is set after everything inside it.
  for (let index = directories.length - 1; index >= 0; index--) {
    const { relative, entry } = directories[index]!;
    const path = root.absolute(relative);
    if (owners) await lchown(path, entry.uid, entry.gid);
    await chmod(path, entry.mode);
    const seconds = secondsOf(entry);
    await lutimes(path, seconds, seconds);
    counts.directories += 1;
  }
  progress.finish();
  return { ...counts, refused, ...(skipped.length > 0 ? { skipped } : {}) };
}

/** Runs a link's creation; a confinement failure or an existing name refuses the entry. */
async function refusingOn(entry: TreeEntry, refuse: (entry: TreeEntry, reason: string) => void, create: () => Promise<void>): Promise<void> {
  try {
    await create();
  } catch (error) {
    if (error instanceof Refusal) return refuse(entry, error.message);
    if ((error as { code?: unknown }).code === 'EEXIST') return refuse(entry, 'its path is already taken by another entry');
    throw error;
  }
}

/** The chunker cuts a run of zeros into maxBytes chunks: their id is known without reading them. */
function zeroChunkIds(repository: BatchWriter['repository']): ReadonlySet<ChunkId> {
  return new Set([repository.chunkId(Buffer.alloc(repository.chunker.maxBytes))]);
}
