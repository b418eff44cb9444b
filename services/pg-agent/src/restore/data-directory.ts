// The data directory a point-in-time restore writes into, and the way back when it fails.
//
// - A new directory (the default <workDir>/restores/<target>-<stamp>, or a named one that does not
//   exist or is empty) is created and, on failure, removed again (an empty one we were given is
//   emptied and keeps its owner and mode).
// - A named, non-empty directory needs overwrite, and is refused while a postmaster runs in it.
//   It is renamed aside to <dir>.pre_restore_<stamp> FIRST, the restore goes into a fresh <dir>,
//   and a failure removes that and renames the original back: the rollback path. On success the
//   original stays aside (reported as previousDatabaseKeptAs) for the operator to remove.
// - <dir>.socket holds the server's unix socket (outside the 0700 data directory, so others can
//   use it); it is created when missing and removed on failure when it was created.
// - Nothing outside <dir>, <dir>.socket and <dir>.pre_restore_<stamp> is ever touched.
//
// <stamp> comes from the command (its stream time), so a redelivery after a crash recognises its
// own leftovers: the default directory, a directory holding our marker file with this request id,
// or an existing <dir>.pre_restore_<stamp> (the original, already set aside by this very command).
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { TidemarkError } from '@tidemark/contracts';
import { livePostmaster, requireReachable, stopPostmaster, type OsUserIds } from '@tidemark/pg';
import type { Logger } from '@tidemark/runtime';

/** Written into the directory while a restore runs; names the request that owns it. */
export const RESTORE_MARKER = 'tidemark-restore-in-progress.json';
/**
 * Written when a restore completed: the restore.completed event it published. A redelivery of the
 * same command (the agent died between publishing and acking) finds it and only announces it
 * again, instead of wiping a server someone may already be using.
 */
export const RESTORE_RECORD = 'tidemark-restore.json';

/** The completion record of `requestId` in `dir`, if that restore completed there. */
export async function readCompletedRestore(dir: string, requestId: string): Promise<Record<string, unknown> | undefined> {
  const text = await readFile(join(resolve(dir), RESTORE_RECORD), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as { requestId?: unknown };
    return record.requestId === requestId ? (record as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface ClaimOptions {
  readonly dir: string;
  /** Whether the command named the directory (intoDirectory) rather than taking the default. */
  readonly named: boolean;
  readonly overwrite: boolean;
  /** compactTimestamp of the command. */
  readonly stamp: string;
  readonly requestId: string;
  /** Who must be able to reach the directory (the server's OS user), when we are root. */
  readonly owner: OsUserIds | undefined;
  /** That user's name (pg.osUser), for messages. */
  readonly osUser: string;
  readonly logger: Logger;
}

export interface ClaimedDirectory {
  readonly dir: string;
  /** The server's unix socket directory: <dir>.socket. */
  readonly socketDirectory: string;
  /** Where the overwritten directory was moved, when one was. */
  readonly previousKeptAs: string | undefined;
  /** After success: the in-progress marker is replaced by the completion record; everything stays. */
  complete(record: { readonly requestId: string }): Promise<void>;
  /** After failure (the server must be stopped first): our directory goes, the original comes back. */
  rollback(): Promise<void>;
}

interface Ownership {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

async function isEmptyDirectory(dir: string): Promise<boolean> {
  return (await readdir(dir)).length === 0;
}

async function markerRequestId(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, RESTORE_MARKER), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return (JSON.parse(text) as { requestId?: string }).requestId;
  } catch {
    return undefined;
  }
}

async function wipe(dir: string, log: Logger): Promise<void> {
  const pid = await livePostmaster(dir);
  if (pid !== undefined) {
    log.warn({ dir, pid }, 'stopping the server left running by an earlier attempt of this restore');
    await stopPostmaster(dir);
  }
  await rm(dir, { recursive: true, force: true });
}

export async function claimDataDirectory(options: ClaimOptions): Promise<ClaimedDirectory> {
  const dir = resolve(options.dir);
  const log = options.logger;
  const setAside = `${dir}.pre_restore_${options.stamp}`;
  const socketDirectory = `${dir}.socket`;
  await requireReachable(dir, options.owner, { what: dir, osUser: options.osUser, otherwise: 'choose a directory it can reach' });
  const socketDirectoryExisted = existsSync(socketDirectory);

  let previousKeptAs: string | undefined;
  // How to undo: remove what we made, or empty a directory we were given empty.
  let givenEmpty: Ownership | undefined;

  const present = await lstat(dir).catch(() => undefined);
  if (present !== undefined && !present.isDirectory()) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `${dir} exists and is not a directory; choose another intoDirectory`);
  }

  if (options.named && options.overwrite && existsSync(setAside)) {
    // This command already moved the original aside before it was interrupted: whatever is in
    // <dir> now is our own partial restore.
    log.warn({ dir, setAside }, 'resuming an interrupted restore: the original directory is already set aside');
    await wipe(dir, log);
    previousKeptAs = setAside;
  } else if (present !== undefined && !(await isEmptyDirectory(dir))) {
    const ours = !options.named || (await markerRequestId(dir)) === options.requestId;
    if (ours) {
      log.warn({ dir }, 'removing the leftover of an interrupted attempt of this restore');
      await wipe(dir, log);
    } else {
      if (!options.overwrite) {
        throw new TidemarkError('RESTORE_TARGET_EXISTS', `${dir} is not empty; restore into another directory, or set overwrite: true (the existing one is moved to ${setAside} and kept)`);
      }
      const pid = await livePostmaster(dir);
      if (pid !== undefined) {
        throw new TidemarkError('RESTORE_TARGET_EXISTS', `a PostgreSQL server (pid ${pid}) is running in ${dir}; stop the server first, then restore over it`);
      }
      await rename(dir, setAside);
      previousKeptAs = setAside;
      log.info({ dir, setAside }, 'moved the existing data directory aside');
    }
  } else if (present !== undefined) {
    givenEmpty = { mode: present.mode & 0o7777, uid: present.uid, gid: present.gid };
  }

  if (!existsSync(dir)) {
    await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
    await mkdir(dir, { mode: 0o700 });
  }
  await chmod(dir, 0o700);
  await writeFile(join(dir, RESTORE_MARKER), `${JSON.stringify({ requestId: options.requestId, startedAt: new Date().toISOString() })}\n`, { mode: 0o600 });

  return {
    dir,
    socketDirectory,
    previousKeptAs,
    async complete(record) {
      await writeFile(join(dir, RESTORE_RECORD), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
      await rm(join(dir, RESTORE_MARKER), { force: true });
    },
    async rollback() {
      await stopPostmaster(dir);
      if (givenEmpty !== undefined) {
        for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
        await chmod(dir, givenEmpty.mode);
        await chown(dir, givenEmpty.uid, givenEmpty.gid).catch(() => undefined);
      } else {
        await rm(dir, { recursive: true, force: true });
      }
      if (!socketDirectoryExisted) await rm(socketDirectory, { recursive: true, force: true });
      if (previousKeptAs !== undefined) {
        await rename(previousKeptAs, dir);
        log.info({ dir }, 'moved the original data directory back');
      }
    },
  };
}
