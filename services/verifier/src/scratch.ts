// The scratch space of a verifier that died mid-verification (SIGKILL, OOM, a host restart)
// outlives it: a scratch database in the sandbox, or a scratch data directory under
// <pg.workDir>/verify with the server it started still running there. A starting verifier removes
// such leftovers. Several verifiers may share a sandbox or a work directory, so a leftover is
// recognised by its owner being gone, never by its name alone:
// - a scratch database is claimed for its whole life by a session-level advisory lock on the
//   sandbox's maintenance database. The lock ends with its session, so a scratch database whose lock
//   can be taken has no living owner.
// - a scratch directory has a sibling <dir>.owner naming its verifier's pid and that process's start
//   time (pids are reused: a containerised verifier is pid 1 after every restart). A directory whose
//   owner is not running is a leftover, and so is one without an owner file (it is written first).
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PostgresConnection } from '@tidemark/config';
import { openClient, stopPostmaster, toPgError, type PgCluster } from '@tidemark/pg';
import type { Logger } from '@tidemark/runtime';

/** Every scratch database and collection name starts with it (see scratchDatabaseName). */
export const SCRATCH_PREFIX = 'tidemark_verify_';
/** The first key of the scratch claims' advisory locks ('tmv1'), so they meet no one else's. */
const CLAIM_LOCK_CLASS = 0x746d7631;
const OWNER_SUFFIX = '.owner';

export interface ScratchDatabaseClaims {
  /** Claims `database` until the returned release runs; taken before the database is created. */
  claim(database: string): Promise<() => Promise<void>>;
  /** Drops, with `drop`, every scratch database no living verifier claims; returns their names. */
  sweep(drop: (database: string) => Promise<void>): Promise<string[]>;
}

export function scratchDatabaseClaims(conn: PostgresConnection, env: NodeJS.ProcessEnv = process.env): ScratchDatabaseClaims {
  const open = () => openClient(conn, conn.database, 'sandbox', env);
  return {
    async claim(database) {
      const client = await open();
      try {
        await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [CLAIM_LOCK_CLASS, database]);
      } catch (error) {
        await client.end().catch(() => undefined);
        throw toPgError(error, 'sandbox', `claiming the scratch database ${database}`);
      }
      // Ending the session releases the lock.
      return () => client.end().catch(() => undefined);
    },
    async sweep(drop) {
      const client = await open();
      try {
        const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname', [SCRATCH_PREFIX]);
        const dropped: string[] = [];
        for (const { datname } of rows) {
          const taken = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [CLAIM_LOCK_CLASS, datname]);
          if (taken.rows[0]?.ok !== true) continue;
          try {
            await drop(datname);
            dropped.push(datname);
          } finally {
            await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [CLAIM_LOCK_CLASS, datname]);
          }
        }
        return dropped;
      } catch (error) {
        throw toPgError(error, 'sandbox', 'looking for scratch databases left by a dead verifier');
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}

interface DirectoryOwner {
  readonly pid: number;
  readonly startTime: string | undefined;
}

/** A process's start time (field 22 of /proc/<pid>/stat), which tells a reused pid from its first owner. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // Counted after the command name's closing parenthesis: the name may hold spaces.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

async function isRunning(owner: DirectoryOwner): Promise<boolean> {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return owner.startTime === undefined || (await startTimeOf(owner.pid)) === owner.startTime;
}

async function readOwner(dir: string): Promise<DirectoryOwner | undefined> {
  const text = await readFile(`${dir}${OWNER_SUFFIX}`, 'utf8').catch(() => undefined);
  try {
    return text === undefined ? undefined : (JSON.parse(text) as DirectoryOwner);
  } catch {
    return undefined;
  }
}

/** Marks `dir` (not created yet) as this process's scratch directory. */
export async function claimScratchDirectory(dir: string): Promise<void> {
  const owner: DirectoryOwner = { pid: process.pid, startTime: await startTimeOf(process.pid) };
  await writeFile(`${dir}${OWNER_SUFFIX}`, `${JSON.stringify(owner)}\n`, { mode: 0o600 });
}

/** After `dir` itself is gone. */
export async function releaseScratchDirectory(dir: string): Promise<void> {
  await rm(`${dir}${OWNER_SUFFIX}`, { force: true });
}

/**
 * Stops the server left in each scratch directory under `root` whose owner is gone (unless
 * `stopServers` is false: a restored files snapshot may hold a postmaster.pid naming a live server
 * that is not ours), and removes it; returns them.
 */
export async function sweepScratchDirectories(root: string, options: { readonly stopServers?: boolean } = {}): Promise<string[]> {
  const entries = await readdir(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const removed: string[] = [];
  for (const name of entries) {
    const dir = join(root, name.endsWith(OWNER_SUFFIX) ? name.slice(0, -OWNER_SUFFIX.length) : name);
    if (removed.includes(dir)) continue;
    const owner = await readOwner(dir);
    if (owner !== undefined && (await isRunning(owner))) continue;
    if (options.stopServers !== false) await stopPostmaster(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
    await releaseScratchDirectory(dir);
    removed.push(dir);
  }
  return removed;
}

export interface LeftoverScratch {
  readonly claims: ScratchDatabaseClaims | undefined;
  readonly sandbox: Pick<PgCluster, 'dropDatabase'> | undefined;
  /** <pg.workDir>/verify: base backups started there. */
  readonly directoryRoot: string;
  /** <files.workDir>/scratch: restored files snapshots (no servers). */
  readonly filesDirectoryRoot?: string;
}

/**
 * Removes what dead verifiers left. A failure is logged and does not stop the start: the
 * verifications themselves use fresh names, and the next start looks again.
 */
export async function removeLeftoverScratch(scratch: LeftoverScratch, logger: Logger): Promise<void> {
  const sweeps: Array<[string, () => Promise<string[]>]> = [['directories', () => sweepScratchDirectories(scratch.directoryRoot)]];
  const filesRoot = scratch.filesDirectoryRoot;
  if (filesRoot !== undefined) sweeps.push(['directories', () => sweepScratchDirectories(filesRoot, { stopServers: false })]);
  const { claims, sandbox } = scratch;
  if (claims !== undefined && sandbox !== undefined) sweeps.unshift(['databases', () => claims.sweep((database) => sandbox.dropDatabase(database))]);
  for (const [what, sweep] of sweeps) {
    try {
      const removed = await sweep();
      if (removed.length > 0) logger.warn({ [what]: removed }, `removed the scratch ${what} of a verifier that died mid-verification`);
    } catch (error) {
      logger.error({ err: error }, `could not remove the scratch ${what} of dead verifiers; the next start tries again (they are named ${SCRATCH_PREFIX}*, <pg.workDir>/verify/* and <files.workDir>/scratch/*)`);
    }
  }
}
