// Files are written a batch at a time, grouped by pack: every chunk a batch needs from one pack is
// fetched with one ranged read (readPackChunks) and written where it belongs with positional
// writes by the codec worker that decodes it, several packs at once; a file of one chunk is
// written whole there, with its metadata. A chunk is fetched once however many files hold it, a
// chunk of zeros is never written (a hole; the file is truncated to its size at the end), and a
// file is written under a temp name and renamed once complete, with its mode, owner and mtime.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { TidemarkError } from '@tidemark/contracts';
import { isAllZero, type BlobLocation, type ChunkFileWrite, type ChunkId, type ChunkRepository } from '@tidemark/chunks';
import type { TreeEntry } from '../tree/entry.js';
import { BoundedWork } from './bounded-work.js';
import { displayPath } from './confine.js';
import type { ConfinedRoot } from './fs-confined.js';
import { secondsOf } from './metadata.js';

/** A batch closes at this many files or chunk bytes, whichever comes first: memory stays flat. */
const BATCH_FILES = 5_000;
const BATCH_BYTES = 256 * 1024 * 1024;
/** Writes in flight at once, and the chunk bytes they may hold. */
const WRITES_IN_FLIGHT = 64;
const WRITE_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
const TEMP_FILE_MODE = 0o600;

export interface PendingFile {
  /** Content and metadata (for a hard link restored as a file: its first entry's). */
  readonly entry: TreeEntry;
  readonly relative: Buffer;
  readonly final: Buffer;
  readonly temp: Buffer;
  /** Chunk writes still to come. */
  writesLeft: number;
  singleWrite: boolean;
  /** A chunk of zeros was left as a hole: the size comes from truncation. */
  holes: boolean;
  created: Promise<void> | undefined;
  /** The permission bits the temp file was created with. */
  createdMode: number;
}

export interface BatchWriter {
  readonly repository: ChunkRepository;
  readonly root: ConfinedRoot;
  readonly owners: boolean;
  /** Packs read at once. */
  readonly concurrency: number;
  /** Ids of all-zero chunks known without reading (the chunker cuts zeros at maxBytes). */
  readonly zeroChunks: ReadonlySet<ChunkId>;
  readonly signal: AbortSignal | undefined;
  readonly onFileDone: (file: PendingFile) => void;
  /** Temp files that exist: removed when the restore fails. */
  readonly temps: Set<PendingFile>;
}

export class FileBatch {
  readonly files: PendingFile[] = [];
  private bytes = 0;

  add(root: ConfinedRoot, relative: Buffer, entry: TreeEntry): void {
    this.files.push({ entry, relative, final: root.absolute(relative), temp: root.tempFor(relative), writesLeft: 0, singleWrite: false, holes: false, created: undefined, createdMode: TEMP_FILE_MODE });
    this.bytes += entry.size;
  }

  get full(): boolean {
    return this.files.length >= BATCH_FILES || this.bytes >= BATCH_BYTES;
  }
}

interface PlannedChunk {
  readonly location: BlobLocation;
  readonly targets: { readonly file: PendingFile; readonly offset: number }[];
}

export async function writeBatch(batch: FileBatch, writer: BatchWriter): Promise<void> {
  if (batch.files.length === 0) return;
  const byPack = await plan(batch, writer);
  const writes = new BoundedWork(WRITES_IN_FLIGHT, WRITE_BYTES_IN_FLIGHT);
  const packs = new BoundedWork(writer.concurrency);
  try {
    for (const file of batch.files) {
      if (file.writesLeft === 0) await writes.start(() => finish(file, undefined, writer));
    }
    for (const [packId, chunks] of byPack) {
      await packs.start(() => writePack(packId, chunks, writes, packs, writer));
    }
  } catch (error) {
    // A failed task stops admission; what it was is reported by drain() below.
    if (!writes.failed && !packs.failed) packs.fail(error);
  }
  try {
    await packs.drain();
  } finally {
    await writes.drain().catch((error: unknown) => {
      if (!packs.failed) throw error;
    });
  }
}

async function plan(batch: FileBatch, writer: BatchWriter): Promise<Map<string, Map<ChunkId, PlannedChunk>>> {
  const byPack = new Map<string, Map<ChunkId, PlannedChunk>>();
  let refreshed = false;
  for (const file of batch.files) {
    let offset = 0;
    for (const chunk of file.entry.chunks ?? []) {
      if (writer.zeroChunks.has(chunk.id)) {
        file.holes = true;
      } else {
        let location = writer.repository.locate(chunk.id);
        if (location === undefined && !refreshed) {
          // A long restore may start before the index files of the snapshot were loaded.
          refreshed = true;
          await writer.repository.refresh();
          location = writer.repository.locate(chunk.id);
        }
        if (location === undefined) throw new TidemarkError('STORAGE_NOT_FOUND', `chunk ${chunk.id} of ${displayPath(file.entry)} is in no pack of the repository`);
        if (location.rawBytes !== chunk.size) throw new TidemarkError('INTEGRITY_FORMAT', `chunk ${chunk.id} of ${displayPath(file.entry)} holds ${location.rawBytes} bytes, the tree says ${chunk.size}`);
        let chunks = byPack.get(location.packId);
        if (chunks === undefined) byPack.set(location.packId, (chunks = new Map()));
        let planned = chunks.get(chunk.id);
        if (planned === undefined) chunks.set(chunk.id, (planned = { location, targets: [] }));
        planned.targets.push({ file, offset });
        file.writesLeft += 1;
      }
      offset += chunk.size;
    }
    file.singleWrite = file.writesLeft === 1;
  }
  return byPack;
}

async function writePack(packId: string, chunks: Map<ChunkId, PlannedChunk>, writes: BoundedWork, packs: BoundedWork, writer: BatchWriter): Promise<void> {
  const locations = [...chunks.values()].map((planned) => planned.location).sort((a, b) => a.offset - b.offset);
  const byWorkers = await workerWrites(chunks, writer);
  for await (const chunk of writer.repository.readPackChunks(packId, locations, byWorkers)) {
    if (writes.failed || packs.failed) return;
    throwIfAborted(writer.signal);
    const planned = chunks.get(chunk.location.id);
    if (planned === undefined) continue;
    if (chunk.written !== undefined) {
      // Written by the codec worker that decoded the chunk: a whole file renamed into place, or a
      // part of one that is finished here once its last part is written.
      if (chunk.written.length === 0) continue;
      for (const { file } of planned.targets) {
        if (file.singleWrite) {
          file.writesLeft -= 1;
          writer.temps.delete(file);
          writer.onFileDone(file);
          continue;
        }
        if (chunk.zeros) file.holes = true;
        await writes.start(() => chunkDone(file, writer), 0);
      }
      continue;
    }
    const { plain } = chunk;
    if (plain.length !== planned.location.rawBytes) throw new TidemarkError('INTEGRITY_FORMAT', `chunk ${chunk.location.id} decoded to ${plain.length} bytes, the index says ${planned.location.rawBytes}`);
    const zeros = isAllZero(plain);
    for (const { file, offset } of planned.targets) {
      if (zeros) file.holes = true;
      await writes.start(() => (zeros ? chunkDone(file, writer) : writeChunk(file, plain, offset, writer)), zeros ? 0 : plain.length);
    }
  }
}

/**
 * What the codec worker decoding a chunk writes itself, so that plaintext never comes back to this
 * thread: a file made of that one chunk (most small files) whole, with its metadata, at no call
 * here per file; a chunk of a larger file at its offset in the file's temp file, created here
 * first. Each file counts as a temp file from now on: a failed restore removes it.
 */
async function workerWrites(chunks: Map<ChunkId, PlannedChunk>, writer: BatchWriter): Promise<Map<ChunkId, ChunkFileWrite[]>> {
  const byWorkers = new Map<ChunkId, ChunkFileWrite[]>();
  for (const planned of chunks.values()) {
    // A single-write file already created here (cannot happen today) is written by this thread.
    if (!planned.targets.every(({ file }) => !file.singleWrite || file.created === undefined)) continue;
    const fileWrites: ChunkFileWrite[] = [];
    for (const { file, offset } of planned.targets) {
      if (!file.singleWrite) {
        await (file.created ??= createTemp(file, writer).then((handle) => handle.close()));
        fileWrites.push({ kind: 'part', temp: file.temp, offset });
        continue;
      }
      const { entry } = file;
      const createMode = createdWith(entry.mode);
      const owned = writer.owners && (entry.uid !== EFFECTIVE_UID || entry.gid !== EFFECTIVE_GID);
      writer.temps.add(file);
      fileWrites.push({
        kind: 'whole', temp: file.temp, final: file.final, offset, size: entry.size, holes: file.holes, createMode,
        ...(owned ? { owner: { uid: entry.uid, gid: entry.gid } } : {}),
        ...(owned || createMode !== entry.mode ? { chmod: entry.mode } : {}),
        mtimeSeconds: secondsOf(entry),
      });
    }
    byWorkers.set(planned.location.id, fileWrites);
  }
  return byWorkers;
}

async function writeChunk(file: PendingFile, plain: Buffer, offset: number, writer: BatchWriter): Promise<void> {
  if (file.singleWrite) {
    // Written through this one handle: the temp file may take its final permission bits at once.
    const handle = await createTemp(file, writer, createdWith(file.entry.mode));
    try {
      await writeFully(handle, plain, offset);
      file.writesLeft -= 1;
    } catch (error) {
      await handle.close();
      throw error;
    }
    return finish(file, handle, writer);
  }
  await (file.created ??= createTemp(file, writer).then((handle) => handle.close()));
  const handle = await open(file.temp, 'r+');
  try {
    await writeFully(handle, plain, offset);
  } finally {
    await handle.close();
  }
  return chunkDone(file, writer);
}

async function chunkDone(file: PendingFile, writer: BatchWriter): Promise<void> {
  file.writesLeft -= 1;
  if (file.writesLeft === 0) await finish(file, undefined, writer);
}

/** Size, owner, mode and mtime on the temp file, then the rename that makes it appear. */
async function finish(file: PendingFile, opened: FileHandle | undefined, writer: BatchWriter): Promise<void> {
  const { entry } = file;
  const handle = opened ?? (file.created === undefined ? await createTemp(file, writer, createdWith(entry.mode)) : await open(file.temp, 'r+'));
  try {
    if (file.holes) await handle.truncate(entry.size);
    // chown before chmod: chown clears setuid and setgid bits. A new file is ours already.
    const owned = writer.owners && (entry.uid !== EFFECTIVE_UID || entry.gid !== EFFECTIVE_GID);
    if (owned) await handle.chown(entry.uid, entry.gid);
    if (owned || file.createdMode !== entry.mode) await handle.chmod(entry.mode);
    const seconds = secondsOf(entry);
    await handle.utimes(seconds, seconds);
  } finally {
    await handle.close();
  }
  await rename(file.temp, file.final);
  writer.temps.delete(file);
  writer.onFileDone(file);
}

async function createTemp(file: PendingFile, writer: BatchWriter, mode = TEMP_FILE_MODE): Promise<FileHandle> {
  const handle = await open(file.temp, 'wx', mode);
  file.createdMode = mode;
  writer.temps.add(file);
  return handle;
}

const UMASK = process.umask();
const EFFECTIVE_UID = process.geteuid?.() ?? -1;
const EFFECTIVE_GID = process.getegid?.() ?? -1;

/** The mode to create a file with: its own when open() gives exactly that (no special bits, nothing masked). */
function createdWith(mode: number): number {
  return (mode & ~0o777) === 0 && (mode & UMASK) === 0 ? mode : TEMP_FILE_MODE;
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** Removes the temp files of a failed restore (best effort: the restore already failed). */
export async function removeTemps(temps: Set<PendingFile>): Promise<void> {
  await Promise.all([...temps].map((file) => rm(file.temp, { force: true }).catch(() => undefined)));
  temps.clear();
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted !== true) return;
  const reason: unknown = signal.reason;
  throw reason instanceof TidemarkError ? reason : new TidemarkError('SHUTTING_DOWN', 'the restore was interrupted', { cause: reason });
}
