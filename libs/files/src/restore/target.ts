// The restore target directory: created, or found empty, or (with overwrite) the existing one moved
// aside until the restore has succeeded. Whatever happens, the caller ends with commit() or
// rollback(), so a failed restore over an existing tree leaves that tree exactly where it was.
import { lstat, mkdir, readdir, rename, rm, chmod, chown, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { TidemarkError } from '@tidemark/contracts';

/** A created target is kept private (0700) while it fills, then opened to this. */
const CREATED_TARGET_MODE = 0o755;
const WORKING_MODE = 0o700;

export interface PlacedTarget {
  readonly directory: string;
  /** The previous tree, moved aside (overwrite only). */
  readonly movedAside: string | undefined;
  /** Success: the previous tree (if any) is removed and the target gets its final mode. */
  commit(): Promise<void>;
  /**
   * Failure: with a tree moved aside, the restored one is removed and the old one moved back.
   * Otherwise what the restore wrote is removed, unless `keepRestored` (a restore that finished
   * apart from refused entries keeps the rest, for the operator to look at).
   */
  rollback(keepRestored: boolean): Promise<void>;
}

export async function placeTarget(intoDirectory: string, overwrite: boolean, owners: boolean): Promise<PlacedTarget> {
  if (!isAbsolute(intoDirectory)) throw new TidemarkError('COMMAND_INVALID', `restore directory ${JSON.stringify(intoDirectory)} is not absolute`);
  const directory = resolve(intoDirectory);
  if (directory === dirname(directory)) throw new TidemarkError('COMMAND_INVALID', 'the file system root cannot be a restore directory');
  const found = await lstat(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw failed(`inspecting ${directory}`, error);
  });
  const emptyDirectory = found?.isDirectory() === true && (await readdir(directory)).length === 0;
  if (found === undefined || emptyDirectory) {
    const finalMode = found === undefined ? CREATED_TARGET_MODE : found.mode & 0o7777;
    if (found === undefined) await mkdir(directory, { recursive: true, mode: WORKING_MODE }).catch((error: unknown) => { throw failed(`creating ${directory}`, error); });
    else await chmod(directory, WORKING_MODE);
    return {
      directory,
      movedAside: undefined,
      commit: () => chmod(directory, finalMode),
      rollback: async (keepRestored) => {
        if (keepRestored) return chmod(directory, finalMode);
        if (found === undefined) return rm(directory, { recursive: true, force: true });
        await emptyOut(directory);
        await chmod(directory, finalMode);
      },
    };
  }
  if (!overwrite) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `${directory} exists and is not an empty directory; restore into a new directory or ask for overwrite`);
  }
  const movedAside = `${directory}.tidemark-old-${new Date().toISOString().replace(/[-:.]/g, '')}-${process.pid}`;
  await rename(directory, movedAside).catch((error: unknown) => { throw failed(`moving ${directory} aside`, error); });
  try {
    await mkdir(directory, { mode: WORKING_MODE });
  } catch (error) {
    await rename(movedAside, directory);
    throw failed(`creating ${directory}`, error);
  }
  // The new tree takes the old root's mode and owner: the root is not an entry of the tree.
  const old = found.isDirectory() ? await stat(movedAside) : undefined;
  return {
    directory,
    movedAside,
    commit: async () => {
      if (old !== undefined) {
        if (owners) await chown(directory, old.uid, old.gid);
        await chmod(directory, old.mode & 0o7777);
      } else {
        await chmod(directory, CREATED_TARGET_MODE);
      }
      await rm(movedAside, { recursive: true, force: true });
    },
    rollback: async () => {
      await rm(directory, { recursive: true, force: true });
      await rename(movedAside, directory);
    },
  };
}

async function emptyOut(directory: string): Promise<void> {
  // Names as bytes: one that is not valid UTF-8 must still be found.
  for (const name of await readdir(directory, { encoding: 'buffer' })) await rm(Buffer.concat([Buffer.from(`${directory}/`), name]), { recursive: true, force: true });
}

function failed(what: string, cause: unknown): TidemarkError {
  const code = (cause as { code?: unknown }).code;
  return new TidemarkError('RESTORE_FAILED', `${what} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause, retryable: code === 'EBUSY' || code === 'EAGAIN' });
}
