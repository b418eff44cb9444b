// A supervised pg_receivewal: it streams a target's WAL over a physical replication slot into a
// local directory; closed segments are handed, in order and one at a time, to `onSegment` (which
// uploads them) and removed only once it resolves. The process is restarted with backoff after a
// crash or a server restart, and stopped cleanly with SIGINT.
//
// - Started DIRECTLY with the postgres uid/gid when we run as root, never through runuser/su:
//   runuser turns any signal into SIGTERM, and PG 15's pg_receivewal exits cleanly (partial
//   segment flushed) only on SIGINT; SIGTERM kills it outright.
// - `--synchronous`: pg_receivewal fsyncs the .partial file as soon as data arrives and reports
//   that flush position to the server at once. Without it, it flushes (and moves the slot) only
//   when a segment closes, so the local bytes of the open segment could be lost in a host crash
//   and the slot / pg_stat_replication would lag by up to a segment, making RPO unmeasurable.
//   The cost is one fsync per burst of WAL (it syncs when the socket is drained, not per message).
// - `--no-loop`: on a lost connection it exits, and we restart it (with backoff, recreating the
//   slot if it vanished) instead of it looping blindly. On restart it resumes from the newest
//   file in the directory, else (PG 15) from the slot's restart_lsn, so nothing is skipped as
//   long as the slot exists.
// - The password travels only in PGPASSWORD (libpq environment), never on argv.
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, watch, type FSWatcher } from 'node:fs';
import { chown, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type pg from 'pg';
import { TidemarkError } from '@tidemark/contracts';
import { libpqEnv, type PostgresConnection } from '@tidemark/config';
import { openClient, toPgError } from './connection.js';
import { pgToolPath, toolEnvironment } from './tools.js';
import { parseWalFileName, WAL_SEGMENT_SIZE } from './wal-names.js';
import { osUserIds } from './os-user.js';
import { blockedDirectoriesAbove, describeBlocked, type OsUserIds } from './reachable.js';

// The name helpers are part of this module's API (pg-agent's archive and gap detector use them).
export * from './wal-names.js';

/** The subset of a pino logger the receiver uses. */
export interface WalReceiverLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface WalReceiverOptions {
  /** Physical replication slot; created (reserving WAL at once) when missing. */
  readonly slot: string;
  /**
   * Local directory for pg_receivewal; created, and handed to the postgres OS user when we are
   * root (its parent directories must let that user through).
   */
  readonly dir: string;
  /** pg_receivewal's status interval (-s) in seconds; also how often the partial segment is offered. Default 5. */
  readonly statusIntervalSeconds?: number;
  /**
   * Called for each closed segment or history file, in WAL order, one at a time. The local file is
   * removed only after it resolves (the newest one once pg_receivewal has written a later file).
   * Must be idempotent: after a restart of this process a file still on disk is offered again.
   */
  readonly onSegment: (path: string, name: string) => Promise<void>;
  /**
   * Called with the open `.partial` segment each status interval when it changed (for a
   * seconds-level RPO). Also called once for a `.partial` of an older timeline that pg_receivewal
   * left behind at a timeline switch (it never renames an incomplete segment); that file is then
   * removed, so the spool does not keep it forever.
   */
  readonly onPartial?: (path: string, name: string) => Promise<void>;
  readonly logger: WalReceiverLogger;
  /** The OS user pg_receivewal runs as when we are root. Default postgres. */
  readonly osUser?: string;
  /** Restart backoff: first delay and cap, in ms. Default 1000 and 30000. */
  readonly restartDelayMs?: { readonly initial: number; readonly max: number };
  /**
   * Poll the slot's restart_lsn each status interval for `status().lastFlushLsn` (one more
   * connection). Default true; a caller that watches the slot itself turns it off.
   */
  readonly pollSlot?: boolean;
  /** How often the directory is rescanned besides fs.watch (a safety net). Default 2000 ms. */
  readonly scanIntervalMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export interface WalReceiverStatus {
  readonly running: boolean;
  readonly pid: number | undefined;
  /** Times pg_receivewal was started again after exiting. */
  readonly restarts: number;
  /** The last file `onSegment` accepted. */
  readonly lastSegment: string | undefined;
  /** The slot's restart_lsn (the flush position pg_receivewal reported), polled each status interval (unless pollSlot is false). */
  readonly lastFlushLsn: string | undefined;
}

export interface WalReceiver {
  status(): WalReceiverStatus;
  /** Stops pg_receivewal with SIGINT (SIGKILL after 10 s), waits for the callback in flight. Idempotent. */
  stop(): Promise<void>;
}

const STOP_TIMEOUT_MS = 10_000;
const STDERR_KEEP_BYTES = 8 * 1024;
/** A run this long resets the backoff. */
const HEALTHY_RUN_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms).unref());

/** Where the receiver notes its pg_receivewal's pid (pg_receivewal ignores non-WAL names). */
export const RECEIVER_PID_FILE = '.pg_receivewal.pid';

const timelineOf = (name: string): number => parseInt(name.slice(0, 8), 16);

/** pg_receivewal's error when the server has already recycled the WAL it asked for. */
const WAL_GONE = /requested WAL segment \S+ has already been removed/;

/** Alive and not a zombie (an exited child not yet reaped still has a /proc entry). */
async function processRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return false;
  // "pid (comm) S ...": the state follows the last ')' (comm may contain spaces and parens).
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/**
 * Stops a pg_receivewal that an earlier run left streaming into `dir` (the agent was killed
 * with SIGKILL or crashed: its child lives on, keeps the slot active, and a new one could never
 * connect). Only a process whose command line is pg_receivewal on this very directory is touched.
 */
async function stopLeftoverReceiver(dir: string, slot: string, logger: WalReceiverLogger): Promise<void> {
  const pid = Number((await readFile(join(dir, RECEIVER_PID_FILE), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return;
  const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  if (!(args[0] ?? '').endsWith('pg_receivewal') || !args.includes(dir) || !(await processRunning(pid))) return;
  logger.warn({ slot, pid }, 'a pg_receivewal left by an earlier run still streams into the wal directory; stopping it');
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  signal('SIGINT');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (await processRunning(pid)) {
    if (Date.now() > deadline) {
      signal('SIGKILL');
      break;
    }
    await sleep(50);
  }
}

/**
 * pg_receivewal runs as `user` and must pass through every parent of its directory; a root-only
 * parent (mkdir -p under root's umask, a 0700 temp dir) makes it fail at once. Warn with the fix.
 */
async function warnIfUnreachable(dir: string, owner: OsUserIds, user: string, slot: string, logger: WalReceiverLogger): Promise<void> {
  const blocked = await blockedDirectoriesAbove(dir, owner);
  if (blocked.length > 0) {
    logger.warn({ slot, dir, blocked: blocked.map((b) => b.path) }, `pg_receivewal runs as ${user} and cannot enter ${describeBlocked(blocked)}: allow it (chmod o+x) or move pg.workDir somewhere ${user} can reach`);
  }
}

async function holdsOnlyZeros(path: string): Promise<boolean> {
  for await (const chunk of createReadStream(path)) if (!(chunk as Buffer).every((byte) => byte === 0)) return false;
  return true;
}

/**
 * pg_receivewal pads each new segment to 16 MiB before writing WAL into it, and leaves the file
 * half-padded when that fails (a full disk). On every later start it refuses that file ("has N
 * bytes, should be 0 or 16777216"), so streaming would never resume once space returns. Such a
 * file holds only zeros, no WAL: it is removed before pg_receivewal starts (never while it runs).
 */
async function removeUnpaddedPartials(dir: string, slot: string, logger: WalReceiverLogger): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.partial') || parseWalFileName(name) === undefined) continue;
    const path = join(dir, name);
    const { size } = await stat(path);
    if (size === 0 || size === WAL_SEGMENT_SIZE) continue;
    if (!(await holdsOnlyZeros(path))) continue; // WAL in it: pg_receivewal reports it
    await rm(path, { force: true });
    logger.warn({ slot, file: name, bytes: size }, 'removed a partial segment pg_receivewal could not finish pre-allocating (was the wal directory\'s disk full?); it held no wal');
  }
}

/** Creates the physical slot unless it exists; returns whether it was created. */
export async function ensurePhysicalSlot(conn: PostgresConnection, slot: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const client = await openClient(conn, conn.database, 'source', env);
  try {
    const rows = await client.query<{ created: boolean }>(
      `SELECT true AS created FROM pg_create_physical_replication_slot($1, true)
        WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
      [slot],
    );
    return rows.rows.length > 0;
  } catch (error) {
    if ((error as { code?: unknown }).code === '42710') return false; // created concurrently
    throw toPgError(error, 'source', `creating replication slot ${slot}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startWalReceiver(conn: PostgresConnection, options: WalReceiverOptions): Promise<WalReceiver> {
  const env = options.env ?? process.env;
  const { slot, logger } = options;
  // Absolute, so a leftover process can be recognised by its command line.
  const dir = resolve(options.dir);
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) {
    throw new TidemarkError('CONFIG_INVALID', `replication slot name ${JSON.stringify(slot)} is invalid: use 1 to 63 lower-case letters, digits or underscores`);
  }
  const statusInterval = options.statusIntervalSeconds ?? 5;
  const backoff = options.restartDelayMs ?? { initial: 1000, max: 30_000 };
  const owner = await osUserIds(options.osUser ?? 'postgres');
  // pgToolPath resolves any pg tool by name; PgTool lists only the ones spawnTool runs.
  const binary = pgToolPath('pg_receivewal', env);
  const childEnv = toolEnvironment({ ...libpqEnv(conn, env), PGAPPNAME: `tidemark-wal-${slot}` }, env);

  // Parents this creates are traversable (not listable) by others: pg_receivewal must pass them.
  await mkdir(dirname(dir), { recursive: true, mode: 0o711 });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (owner !== undefined) {
    await chown(dir, owner.uid, owner.gid);
    await warnIfUnreachable(dir, owner, options.osUser ?? 'postgres', slot, logger);
  }
  await stopLeftoverReceiver(dir, slot, logger);
  await removeUnpaddedPartials(dir, slot, logger);
  await ensurePhysicalSlot(conn, slot, env);

  let stopping = false;
  let child: ChildProcess | undefined;
  let childExited: Promise<void> = Promise.resolve();
  let restarts = 0;
  let delay = backoff.initial;
  let lastSegment: string | undefined;
  let lastFlushLsn: string | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let walLost = false;

  // --- the process -----------------------------------------------------------------------------

  const launch = () => {
    const args = ['-D', dir, '-S', slot, '--no-loop', '--synchronous', '-s', String(statusInterval)];
    const started = Date.now();
    let stderr = '';
    const proc = spawn(binary, args, { cwd: dir, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'], ...(owner ?? {}) });
    child = proc;
    if (proc.pid !== undefined) {
      writeFile(join(dir, RECEIVER_PID_FILE), `${proc.pid}\n`).catch((error: unknown) => logger.warn({ slot, err: (error as Error).message }, 'could not note the pg_receivewal pid'));
    }
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEEP_BYTES);
    });
    childExited = new Promise<void>((resolve) => {
      let gone = false;
      const onGone = (code: number | null, signal: NodeJS.Signals | null) => {
        if (gone) return;
        gone = true;
        if (child === proc) child = undefined;
        resolve();
        const tail = stderr.trim().split('\n').slice(-5).join('\n');
        if (stopping) {
          logger.info({ slot, code, signal }, 'pg_receivewal stopped');
          return;
        }
        if (Date.now() - started > HEALTHY_RUN_MS) delay = backoff.initial;
        if (WAL_GONE.test(stderr)) walLost = true;
        logger.warn({ slot, code, signal, stderr: tail, restartInMs: delay }, 'pg_receivewal exited; restarting it');
        scheduleRestart();
      };
      // A failed spawn (e.g. ENOENT) may emit 'error' without 'close'.
      proc.once('error', (error) => {
        stderr += `could not start pg_receivewal (${binary}): ${error.message}`;
        if (proc.pid === undefined) onGone(null, null);
      });
      proc.once('close', (code, signal) => onGone(code, signal));
    });
    logger.info({ slot, dir, pid: proc.pid }, 'pg_receivewal started');
  };

  const scheduleRestart = () => {
    const wait = delay;
    delay = Math.min(delay * 2, backoff.max);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopping) return;
      restarts += 1;
      const skip = walLost;
      walLost = false;
      (skip ? skipLostWal() : Promise.resolve())
        .catch((error: unknown) => logger.error({ slot, err: (error as Error).message }, 'could not skip the lost wal yet; retrying'))
        .then(() => removeUnpaddedPartials(dir, slot, logger))
        .catch((error: unknown) => logger.warn({ slot, err: (error as Error).message }, 'could not check the wal directory for unfinished partial segments'))
        // A dropped slot is recreated (logged: the archive then has a gap the detector reports).
        .then(() => ensurePhysicalSlot(conn, slot, env))
        .then((created) => {
          if (created) logger.warn({ slot }, 'replication slot was missing and has been recreated; wal written meanwhile may be missing from the archive');
        })
        .catch((error: unknown) => logger.warn({ slot, err: (error as Error).message }, 'could not check the replication slot'))
        .finally(() => {
          if (!stopping) launch();
        });
    }, wait);
  };

  /**
   * The server no longer has the WAL pg_receivewal would resume from (the slot was dropped and
   * recreated, or invalidated by max_slot_wal_keep_size): retrying can never succeed, and a fresh
   * slot would hold WAL back forever. Hand over what is complete, drop an invalidated slot (it is
   * recreated), and move the leftovers aside so streaming restarts at the slot's position. The
   * archive then has a gap, which the gap detector reports; a new base backup covers it.
   */
  const skipLostWal = async () => {
    scan();
    while (working !== undefined) await working;
    const leftovers = (await readdir(dir)).filter((name) => parseWalFileName(name) !== undefined).sort();
    const pending = leftovers.filter((name) => !name.endsWith('.partial') && !handedOver.has(name));
    if (pending.length > 0) throw new TidemarkError('STORAGE_UNAVAILABLE', `${pending.length} closed wal files are not archived yet (first ${pending[0]}); they are kept until they are`);
    // The slot goes too (it is recreated before the next start): invalidated, or moved back by
    // the failed attempt itself (pg_receivewal reports its start position as flushed, and a
    // physical slot takes that as its restart_lsn), it points at WAL the server no longer has.
    const client = await openClient(conn, conn.database, 'source', env);
    try {
      const rows = await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (rows.rows[0]?.active === true) throw new TidemarkError('SOURCE_UNAVAILABLE', `replication slot ${slot} is still in use by the failed stream`);
      if (rows.rows[0] !== undefined) await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
    } finally {
      await client.end().catch(() => undefined);
    }
    const aside = join(dir, `.lost-${Date.now()}`);
    if (leftovers.length > 0) {
      await mkdir(aside);
      for (const name of leftovers) await rename(join(dir, name), join(aside, name));
    }
    handedOver.clear();
    lastPartial = undefined;
    logger.error(
      { slot, keptIn: leftovers.length > 0 ? aside : undefined, files: leftovers },
      "the server has removed wal this receiver still needed (its slot was dropped or invalidated): streaming restarts at the slot's position, so the archive has a gap here; take a new base backup",
    );
  };

  // --- the directory -----------------------------------------------------------------------------

  let working: Promise<void> | undefined;
  let again = false;
  let lastPartial: { name: string; mtimeMs: number } | undefined;
  let partialDue = false;

  // Files already accepted by onSegment but still on disk (see below); bounded by what is on disk.
  const handedOver = new Set<string>();
  const reportedStrays = new Set<string>();

  const drain = async () => {
    const names = (await readdir(dir)).filter((name) => parseWalFileName(name) !== undefined).sort();
    for (const [index, name] of names.entries()) {
      if (stopping) return;
      if (name.endsWith('.partial')) continue;
      const path = join(dir, name);
      if (!handedOver.has(name)) {
        await options.onSegment(path, name);
        handedOver.add(name);
        lastSegment = name;
      }
      // pg_receivewal renames a finished .partial and then fsyncs the new name: removing it
      // before that fails pg_receivewal. Once a later file exists it has moved on, so the newest
      // closed file stays until then (it also tells a restarted pg_receivewal where to resume).
      if (index < names.length - 1) {
        await rm(path, { force: true });
        handedOver.delete(name);
      }
    }
    const partials = names.filter((n) => n.endsWith('.partial'));
    const partial = partials.at(-1);
    // At a timeline switch pg_receivewal closes the old timeline's last segment without renaming
    // it (it is incomplete), so that .partial would stay in the spool forever. Once a partial of
    // a newer timeline exists, the old one is offered one last time and removed.
    for (const name of partials.slice(0, -1)) {
      if (stopping) return;
      if (timelineOf(name) >= timelineOf(partial as string)) {
        if (!reportedStrays.has(name)) {
          reportedStrays.add(name);
          logger.warn({ slot, file: name, newest: partial }, 'two partial segments of one timeline in the wal directory; leaving the older one alone: inspect it');
        }
        continue;
      }
      const path = join(dir, name);
      if (options.onPartial !== undefined) await options.onPartial(path, name);
      await rm(path, { force: true });
      logger.info({ slot, file: name }, 'removed the partial segment of a timeline pg_receivewal has left');
    }
    if (partialDue && options.onPartial !== undefined && !stopping) {
      partialDue = false;
      if (partial === undefined) return;
      const path = join(dir, partial);
      const info = await stat(path).catch(() => undefined);
      if (info === undefined || (lastPartial?.name === partial && lastPartial.mtimeMs === info.mtimeMs)) return;
      await options.onPartial(path, partial);
      lastPartial = { name: partial, mtimeMs: info.mtimeMs };
    }
  };

  /** Runs `drain` now, or once more after the running one: never two at a time. */
  const scan = () => {
    if (stopping) return;
    if (working !== undefined) {
      again = true;
      return;
    }
    working = drain()
      .catch((error: unknown) => {
        const code = (error as { code?: unknown }).code;
        // A partial renamed under our feet is not worth a warning; the next scan sees the segment.
        if (code !== 'ENOENT') logger.warn({ slot, err: (error as Error).message }, 'handing over wal failed; it will be retried');
      })
      .finally(() => {
        working = undefined;
        if (again) {
          again = false;
          scan();
        }
      });
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, () => scan());
    watcher.on('error', (error) => logger.warn({ slot, err: error.message }, 'watching the wal directory failed; relying on the periodic scan'));
  } catch (error) {
    logger.warn({ slot, err: (error as Error).message }, 'cannot watch the wal directory; relying on the periodic scan');
  }
  const scanTimer = setInterval(scan, options.scanIntervalMs ?? 2000);

  // --- the slot's flush position ---------------------------------------------------------------

  let client: pg.Client | undefined;
  let polling: Promise<void> | undefined;
  const pollFlush = () => {
    if (polling !== undefined || stopping || options.pollSlot === false) return;
    polling = readFlush().finally(() => {
      polling = undefined;
    });
  };
  const readFlush = async () => {
    try {
      client ??= await openClient(conn, conn.database, 'source', env);
      const rows = await client.query<{ restart_lsn: string | null }>('SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      lastFlushLsn = rows.rows[0]?.restart_lsn ?? lastFlushLsn;
    } catch {
      // The server is down or restarting: reconnect next time.
      const broken = client;
      client = undefined;
      await broken?.end().catch(() => undefined);
    }
  };
  const statusTimer = setInterval(() => {
    partialDue = true;
    scan();
    pollFlush();
  }, statusInterval * 1000);

  launch();
  scan();
  pollFlush();

  let stopped: Promise<void> | undefined;
  return {
    status: () => ({ running: child !== undefined, pid: child?.pid, restarts, lastSegment, lastFlushLsn }),
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(scanTimer);
        clearInterval(statusTimer);
        if (restartTimer !== undefined) clearTimeout(restartTimer);
        watcher?.close();
        const proc = child;
        if (proc !== undefined) {
          proc.kill('SIGINT');
          const killed = await Promise.race([childExited.then(() => false), sleep(STOP_TIMEOUT_MS).then(() => true)]);
          if (killed) {
            logger.warn({ slot }, 'pg_receivewal did not stop on SIGINT; killing it');
            proc.kill('SIGKILL');
            await childExited;
          }
        }
        await working;
        await polling;
        await client?.end().catch(() => undefined);
        await rm(join(dir, RECEIVER_PID_FILE), { force: true });
      })();
      return stopped;
    },
  };
}
