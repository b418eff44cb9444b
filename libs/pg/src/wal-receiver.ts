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
import { watch, type FSWatcher } from 'node:fs';
import { chown, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { TidemarkError } from '@tidemark/contracts';
import { libpqEnv, type PostgresConnection } from '@tidemark/config';
import { openClient, toPgError } from './connection.js';
import { pgToolPath, toolEnvironment } from './tools.js';
import { parseWalFileName } from './wal-names.js';

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
  /** Called with the open `.partial` segment each status interval when it changed (for a seconds-level RPO). */
  readonly onPartial?: (path: string, name: string) => Promise<void>;
  readonly logger: WalReceiverLogger;
  /** The OS user pg_receivewal runs as when we are root. Default postgres. */
  readonly osUser?: string;
  /** Restart backoff: first delay and cap, in ms. Default 1000 and 30000. */
  readonly restartDelayMs?: { readonly initial: number; readonly max: number };
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
  /** The slot's restart_lsn (the flush position pg_receivewal reported), polled each status interval. */
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

async function osUserIds(user: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new TidemarkError('CONFIG_INVALID', `the os user ${user} does not exist; pg_receivewal must not run as root: create it or set the wal receiver's os user`);
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
  const { dir, slot, logger } = options;
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) {
    throw new TidemarkError('CONFIG_INVALID', `replication slot name ${JSON.stringify(slot)} is invalid: use 1 to 63 lower-case letters, digits or underscores`);
  }
  const statusInterval = options.statusIntervalSeconds ?? 5;
  const backoff = options.restartDelayMs ?? { initial: 1000, max: 30_000 };
  const owner = process.getuid?.() === 0 ? await osUserIds(options.osUser ?? 'postgres') : undefined;
  // pgToolPath resolves any pg tool by name; PgTool lists only the ones spawnTool runs.
  const binary = pgToolPath('pg_receivewal', env);
  const childEnv = toolEnvironment({ ...libpqEnv(conn, env), PGAPPNAME: `tidemark-wal-${slot}` }, env);

  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (owner !== undefined) await chown(dir, owner.uid, owner.gid);
  await ensurePhysicalSlot(conn, slot, env);

  let stopping = false;
  let child: ChildProcess | undefined;
  let childExited: Promise<void> = Promise.resolve();
  let restarts = 0;
  let delay = backoff.initial;
  let lastSegment: string | undefined;
  let lastFlushLsn: string | undefined;
  let restartTimer: NodeJS.Timeout | undefined;

  // --- the process -----------------------------------------------------------------------------

  const launch = () => {
    const args = ['-D', dir, '-S', slot, '--no-loop', '--synchronous', '-s', String(statusInterval)];
    const started = Date.now();
    let stderr = '';
    const proc = spawn(binary, args, { cwd: dir, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'], ...(owner ?? {}) });
    child = proc;
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
      // A dropped slot is recreated (logged: the archive then has a gap the detector reports).
      ensurePhysicalSlot(conn, slot, env)
        .then((created) => {
          if (created) logger.warn({ slot }, 'replication slot was missing and has been recreated; wal written meanwhile may be missing from the archive');
        })
        .catch((error: unknown) => logger.warn({ slot, err: (error as Error).message }, 'could not check the replication slot'))
        .finally(() => {
          if (!stopping) launch();
        });
    }, wait);
  };

  // --- the directory -----------------------------------------------------------------------------

  let working: Promise<void> | undefined;
  let again = false;
  let lastPartial: { name: string; mtimeMs: number } | undefined;
  let partialDue = false;

  // Files already accepted by onSegment but still on disk (see below); bounded by what is on disk.
  const handedOver = new Set<string>();

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
    if (partialDue && options.onPartial !== undefined && !stopping) {
      partialDue = false;
      const partial = names.filter((n) => n.endsWith('.partial')).pop();
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
    if (polling !== undefined || stopping) return;
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
      })();
      return stopped;
    },
  };
}
