// Point-in-time recovery of an extracted base backup: the recovery config for a target (time, LSN,
// restore point, latest, or just the backup itself), a server started so that it outlives the
// process that started it, its log read back for progress, failure reasons and the RTO split, and
// the checks run on the promoted result.
//
// The server runs detached (its own session, stdout and stderr to a file, no pipe to us): a
// restored cluster is the operator's from then on, and must not die with the agent. Its log goes
// through the logging collector to <dir>/log/postgresql.log (rotation can be switched on later with
// a reload); what the postmaster writes before the collector starts lands in the same file.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { TidemarkError, parsePointInTimeText, pointInTimeProblem, postgresTimeOf, type RecoveryTarget } from '@tidemark/contracts';
import { AGENT_ACCESS_LINE, prepareRecoveryDirectory, quoteConf, serverEnvironment } from './base-verify.js';
import { withSocketClient } from './restored-server.js';

/** A recovery target, plus `immediate`: just the base backup, consistent at its end. */
export type PointInTimeTarget = RecoveryTarget | { readonly type: 'immediate' };

/** Where the restored server logs, relative to its data directory. */
export const RECOVERY_LOG = join('log', 'postgresql.log');

/** A time for postgresql.conf: UTC, in the form PostgreSQL prints, to the microsecond. */
function confTime(time: string): string {
  if (parsePointInTimeText(time) === undefined) throw new TidemarkError('COMMAND_INVALID', `pointInTime.time: ${pointInTimeProblem(time)}`);
  return postgresTimeOf(time);
}

/** The recovery_target* settings for a target; every target follows the newest timeline and promotes. */
export function recoveryTargetSettings(target: PointInTimeTarget): string[] {
  const lines: string[] = [];
  switch (target.type) {
    case 'time':
      lines.push(`recovery_target_time = ${quoteConf(confTime(target.time))}`, `recovery_target_inclusive = ${target.inclusive ? 'on' : 'off'}`);
      break;
    case 'lsn':
      lines.push(`recovery_target_lsn = ${quoteConf(target.lsn)}`, `recovery_target_inclusive = ${target.inclusive ? 'on' : 'off'}`);
      break;
    case 'restorePoint':
      lines.push(`recovery_target_name = ${quoteConf(target.name)}`);
      break;
    case 'immediate':
      lines.push("recovery_target = 'immediate'");
      break;
    case 'latest':
      // No target: replay everything the archive has, then promote.
      break;
  }
  lines.push("recovery_target_timeline = 'latest'", "recovery_target_action = 'promote'");
  return lines;
}

/** How a target reads in messages. */
export function describePointInTimeTarget(target: PointInTimeTarget): string {
  switch (target.type) {
    case 'time':
      return `time ${target.time}${target.inclusive ? '' : ' (exclusive)'}`;
    case 'lsn':
      return `LSN ${target.lsn}${target.inclusive ? '' : ' (exclusive)'}`;
    case 'restorePoint':
      return `restore point "${target.name}"`;
    case 'immediate':
      return 'the end of the base backup';
    case 'latest':
      return 'the end of the archived WAL';
  }
}

const LOGGING_SETTINGS = [
  'logging_collector = on',
  "log_directory = 'log'",
  "log_filename = 'postgresql.log'",
  'log_rotation_age = 0',
  'log_rotation_size = 0',
  "log_line_prefix = '%m '",
  "log_timezone = 'UTC'",
];

// ---------------------------------------------------------------------------------------------
// Reading the recovery log

export interface RecoveryLog {
  readonly redoStartsAt?: Date;
  readonly redoDoneAt?: Date;
  /** The LSN of the last record replayed ("redo done at"). */
  readonly redoDoneLsn?: string;
  /** "selected new timeline ID: N": the timeline the promoted server writes on. */
  readonly newTimeline?: number;
  readonly newTimelineAt?: Date;
  /** "database system is ready to accept connections" (after promotion: hot standby is off). */
  readonly readyAt?: Date;
  /** The commit time of the last transaction replayed, ISO 8601. */
  readonly lastTransactionAt?: string;
  /** "recovery stopping before commit of transaction 740, time …", when a target stopped replay. */
  readonly stoppedBy?: string;
  /** Files restore_command delivered ("restored log file … from archive"). */
  readonly restoredFiles: number;
  /** FATAL and PANIC messages, in order. */
  readonly fatal: readonly string[];
}

const LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (UTC|GMT|[+-]\d\d(?::?\d\d)?) ([A-Z]+\d?):\s+(.*)$/;

/** A log prefix time ("2026-11-22 03:04:05.123 UTC") as a Date. */
function prefixTime(stamp: string, zone: string): Date {
  const offset = zone === 'UTC' || zone === 'GMT' ? 'Z' : zone.length === 3 ? `${zone}:00` : zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  return new Date(`${stamp.replace(' ', 'T')}${offset}`);
}

/** A timestamptz as PostgreSQL prints it ("2026-11-22 03:04:05.123456+00") as ISO 8601 (to the millisecond), or undefined. */
export function pgTimestampToIso(text: string): string | undefined {
  const parsed = parsePointInTimeText(text);
  return parsed === undefined ? undefined : new Date(Number(parsed.epochMicros / 1000n)).toISOString();
}

/** What a recovering server's log says so far. Lines without our prefix (a restore_command's stderr) are skipped. */
export function parseRecoveryLog(text: string): RecoveryLog {
  const log: {
    -readonly [K in keyof RecoveryLog]: RecoveryLog[K];
  } = { restoredFiles: 0, fatal: [] };
  const fatal: string[] = [];
  for (const line of text.split('\n')) {
    const match = LINE.exec(line);
    if (!match) continue;
    const at = prefixTime(match[1] as string, match[2] as string);
    const level = match[3] as string;
    const message = match[4] as string;
    if (level === 'FATAL' || level === 'PANIC') {
      // Connection attempts during startup are refused with FATAL; they say nothing about recovery.
      if (!/the database system is (starting up|not yet accepting connections|shutting down)/.test(message)) fatal.push(message);
      continue;
    }
    if (level !== 'LOG') continue;
    let m: RegExpExecArray | null;
    if (/^redo starts at /.test(message)) log.redoStartsAt ??= at;
    else if ((m = /^redo done at ([0-9A-F]+\/[0-9A-F]+)/i.exec(message))) {
      log.redoDoneAt = at;
      log.redoDoneLsn = m[1] as string;
    } else if ((m = /^last completed transaction was at log time (.+)$/.exec(message))) {
      const iso = pgTimestampToIso(m[1] as string);
      if (iso) log.lastTransactionAt = iso;
    } else if (/^recovery stopping /.test(message)) log.stoppedBy = message;
    else if ((m = /^selected new timeline ID: (\d+)/.exec(message))) {
      log.newTimeline = Number(m[1]);
      log.newTimelineAt = at;
    } else if (/^database system is ready to accept connections/.test(message)) log.readyAt = at;
    else if (/^restored log file ".*" from archive/.test(message)) log.restoredFiles += 1;
  }
  log.fatal = fatal;
  return log;
}

/** The last `lines` lines of a log, joined with "; " for an error message. */
export function logTail(text: string, lines = 6): string {
  return text.trim().split('\n').filter((line) => line.trim() !== '').slice(-lines).join('; ');
}

export interface RecoveryTimes {
  readonly replayMs: number;
  readonly startMs: number;
}

/**
 * The RTO split from the log: start = spawn → "redo starts" plus "redo done" → ready;
 * replay = "redo starts" → "redo done" (or the timeline switch when no "redo done" was logged).
 */
export function recoveryTimes(log: RecoveryLog, spawnedAt: Date, readyAt: Date): RecoveryTimes {
  const ready = log.readyAt ?? readyAt;
  const redoStart = log.redoStartsAt;
  const redoEnd = log.redoDoneAt ?? log.newTimelineAt;
  if (redoStart === undefined || redoEnd === undefined) return { replayMs: 0, startMs: Math.max(0, ready.getTime() - spawnedAt.getTime()) };
  const replayMs = Math.max(0, redoEnd.getTime() - redoStart.getTime());
  const startMs = Math.max(0, redoStart.getTime() - spawnedAt.getTime()) + Math.max(0, ready.getTime() - redoEnd.getTime());
  return { replayMs, startMs };
}

// ---------------------------------------------------------------------------------------------
// Postmasters in a data directory

/** The pid of a live postmaster owning `dir` (its postmaster.pid names a running postgres), or undefined. */
export async function livePostmaster(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(text?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  // A stale postmaster.pid whose pid now belongs to something else is not a server.
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined);
  if (comm !== undefined && !/^(postgres|postmaster)/.test(comm.trim())) return undefined;
  return pid;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Stops the postmaster owning `dir`, if any: fast shutdown (SIGINT), immediate (SIGQUIT) after
 * `timeoutMs`, SIGKILL after as long again. Resolves once it is gone.
 */
export async function stopPostmaster(dir: string, timeoutMs = 30_000): Promise<void> {
  const pid = await livePostmaster(dir);
  if (pid !== undefined) await stopPid(pid, timeoutMs);
}

async function stopPid(pid: number, timeoutMs: number): Promise<void> {
  const steps: Array<NodeJS.Signals> = ['SIGINT', 'SIGQUIT', 'SIGKILL'];
  for (const signal of steps) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!alive(pid)) return;
      await sleep(100);
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Starting and waiting

export interface PointInTimeRecoveryOptions {
  readonly port: number;
  readonly target: PointInTimeTarget;
  /** PostgreSQL's restore_command (shell syntax, %f and %p). */
  readonly restoreCommand: string;
  /** 127.0.0.1 by default. */
  readonly listenAddress?: string;
  /**
   * The unix socket directory, outside the data directory (see prepareRecoveryDirectory's
   * keepSource: the source's configuration and authentication are kept). Private (0700) until
   * handOverRestoredServer opens it.
   */
  readonly socketDirectory: string;
  /** OS user that owns and runs the server when we are root; TIDEMARK_PG_OS_USER or 'postgres'. */
  readonly osUser?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export interface WaitOptions {
  /** Aborting stops waiting (the server keeps running; stop it). */
  readonly signal?: AbortSignal;
  /** Called on every poll (about 4 times a second) while recovery runs. */
  readonly onProgress?: () => void;
  /** Undefined: no limit (replay takes as long as the WAL needs). */
  readonly timeoutMs?: number;
  /**
   * Turns a failed recovery (the server exited) into the error to report; the default explains
   * it from the log. Gets the log so far and its tail.
   */
  readonly explainFailure?: (log: RecoveryLog, tail: string) => TidemarkError | undefined;
  /** Roles to try for the readiness check over the private unix socket, in order; ['postgres'] by default. */
  readonly users?: readonly string[];
}

export interface PromotedServer {
  readonly log: RecoveryLog;
  /** When we saw the server ready and out of recovery. */
  readonly readyAt: Date;
  /** A role that can log in over the private unix socket: the one that answered. */
  readonly user: string;
}

export interface RecoveringServer {
  readonly dataDirectory: string;
  readonly host: string;
  readonly port: number;
  readonly socketDirectory: string;
  /** Where the server's binaries are (pg_ctl beside postgres). */
  readonly binDirectory: string;
  readonly logFile: string;
  readonly spawnedAt: Date;
  readonly pid: number | undefined;
  /** Resolves once recovery has ended, the server promoted and accepts connections. */
  waitUntilPromoted(options?: WaitOptions): Promise<PromotedServer>;
  readLog(): Promise<string>;
  hasExited(): boolean;
  /** Fast shutdown, escalating; resolves once the server is gone. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Configures an extracted base backup for archive recovery to `target` (see
 * prepareRecoveryDirectory) and starts it detached, logging to <dir>/log/postgresql.log.
 */
export async function startPointInTimeRecovery(dir: string, options: PointInTimeRecoveryOptions): Promise<RecoveringServer> {
  const env = options.env ?? process.env;
  const host = options.listenAddress ?? '127.0.0.1';
  const { postgres, owner } = await prepareRecoveryDirectory(dir, options.port, {
    env,
    listenAddress: host,
    restoreCommand: options.restoreCommand,
    recoveryTarget: recoveryTargetSettings(options.target),
    extraSettings: LOGGING_SETTINGS,
    keepSource: { socketDirectory: options.socketDirectory },
    ...(options.osUser !== undefined ? { osUser: options.osUser } : {}),
  });
  const logFile = join(dir, RECOVERY_LOG);
  await mkdir(join(dir, 'log'), { recursive: true, mode: 0o700 });
  // A fresh log per start: a retry on another port must not read the last attempt's lines.
  await writeFile(logFile, '', { mode: 0o600 });
  if (owner !== undefined) {
    await chown(join(dir, 'log'), owner.uid, owner.gid);
    await chown(logFile, owner.uid, owner.gid);
  }

  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  const spawnedAt = new Date();
  try {
    child = spawn(postgres, ['-D', dir], {
      cwd: dir,
      env: serverEnvironment(env),
      stdio: ['ignore', fd, fd],
      // Its own session: signals to the agent's process group never reach it, and it outlives us.
      detached: true,
      ...(owner ?? {}),
    });
  } finally {
    closeSync(fd);
  }
  let exited = false;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      spawnError = error;
      exited = true;
      resolve();
    });
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  child.unref();

  const readLog = () => readFile(logFile, 'utf8').catch(() => '');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exited || child.pid === undefined) return;
      await stopPid(child.pid, 30_000);
      await Promise.race([exit, sleep(1000)]);
    })());

  const waitUntilPromoted = async (wait: WaitOptions = {}): Promise<PromotedServer> => {
    const deadline = wait.timeoutMs === undefined ? Infinity : Date.now() + wait.timeoutMs;
    const users = [...new Set(wait.users ?? ['postgres'])];
    for (;;) {
      if (wait.signal?.aborted) throw new TidemarkError('SHUTTING_DOWN', 'the point-in-time restore was interrupted by shutdown; it will be retried');
      wait.onProgress?.();
      const text = await readLog();
      const log = parseRecoveryLog(text);
      if (exited) {
        await sleep(50); // the last lines may still be on their way to the file
        const final = await readLog();
        const finalLog = parseRecoveryLog(final);
        const tail = logTail(final);
        if (spawnError) throw new TidemarkError('RESTORE_FAILED', `could not start ${postgres}: ${spawnError.message}`);
        throw wait.explainFailure?.(finalLog, tail) ?? explainRecoveryFailure(finalLog, tail, dir, options.target);
      }
      if (log.readyAt !== undefined) {
        const answered = await outOfRecovery(options.socketDirectory, options.port, users);
        if (answered !== undefined) return { log, readyAt: new Date(), user: answered };
      }
      if (Date.now() > deadline) throw new TidemarkError('TIMEOUT', `the server restoring into ${dir} did not finish recovery in time: ${logTail(text)}`);
      await sleep(250);
    }
  };

  return {
    dataDirectory: dir,
    host,
    port: options.port,
    socketDirectory: options.socketDirectory,
    binDirectory: dirname(postgres),
    logFile,
    spawnedAt,
    pid: child.pid,
    waitUntilPromoted,
    readLog,
    hasExited: () => exited,
    stop,
  };
}

/** Whether a server exited because its port was taken (worth another port when we chose it). */
export const portWasTaken = (logText: string): boolean =>
  /could not bind IPv[46] address|could not create listen socket|could not create any TCP\/IP sockets|address already in use/i.test(logText);

/**
 * The default explanation of a server that exited during recovery, in the operator's terms. The
 * classified cases carry no log lines (the caller logs the tail); an unrecognised exit quotes the
 * server's FATAL lines, the only clue there is.
 */
export function explainRecoveryFailure(log: RecoveryLog, tail: string, dir: string, target?: PointInTimeTarget): TidemarkError {
  const fatal = log.fatal.join('; ');
  if (/recovery ended before configured recovery target was reached/.test(fatal)) return targetNotReached(log, target);
  if (/requested recovery stop point is before consistent recovery point/.test(fatal)) {
    return new TidemarkError('RECOVERY_TARGET_UNREACHABLE', 'the recovery target lies before the end of the base backup; restore from an older base backup (artifactId) or choose a later target');
  }
  if (/WAL ends before (end of online backup|consistent recovery point)|could not locate required checkpoint record|could not find redo location/.test(fatal)) {
    return new TidemarkError('WAL_MISSING', 'the WAL archive lacks segments the base backup needs to become consistent; restore from another base backup, and check the archive (wal_gap alerts)');
  }
  return new TidemarkError('RESTORE_FAILED', `postgres exited while recovering in ${dir}: ${fatal || tail || 'no log output'}`);
}

/** Replay used up the archived WAL without meeting the target: a restore point that is not there, or a time or LSN past the end. */
function targetNotReached(log: RecoveryLog, target: PointInTimeTarget | undefined): TidemarkError {
  const end = [
    log.redoDoneLsn ? `at LSN ${log.redoDoneLsn}` : undefined,
    log.lastTransactionAt ? `with the last transaction committed at ${log.lastTransactionAt}` : undefined,
  ].filter((part) => part !== undefined).join(', ');
  const archiveEnds = `the archived WAL ends${end ? ` ${end}` : ''}`;
  if (target?.type === 'restorePoint') {
    return new TidemarkError('RECOVERY_TARGET_UNREACHABLE', `restore point "${target.name}" does not exist in the archived WAL after the chosen base backup: replay went through all of it (${archiveEnds}). Check the name given to pg_create_restore_point() and that it was created after that base backup, or restore to the end of the archive (--to latest) or to a time`);
  }
  const what = target === undefined ? 'the recovery target' : describePointInTimeTarget(target);
  return new TidemarkError('RECOVERY_TARGET_UNREACHABLE', `${what} lies beyond the end of the archive: ${archiveEnds}. Choose a target at or before that, or the end of the archive (--to latest); if later WAL should exist, check that WAL archiving for the target is running`);
}

/** Connects over the unix socket as one of `users` (the first is tried first; a role that does not exist moves on) and asks. */
async function outOfRecovery(socketDirectory: string, port: number, users: readonly string[]): Promise<string | undefined> {
  for (const user of users) {
    const client = new pg.Client({ host: socketDirectory, port, user, database: 'template1', connectionTimeoutMillis: 5000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering');
      return rows[0]?.recovering === false ? user : undefined;
    } catch (error) {
      // 28000: no such role; the caller's list has another one to try.
      if ((error as { code?: unknown }).code !== '28000') return undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// After promotion

/**
 * Hands a promoted, checked restore over to its operator: restore_command is removed from its
 * config (it must hold no reference to the agent that served the WAL), AGENT_ACCESS_LINE is
 * removed from pg_hba.conf, the config is reloaded, and once the postmaster has read the source's
 * own rules again the socket directory is opened (0755), so the server is logged into exactly as
 * the source was. `user` must be able to call pg_reload_conf().
 */
export async function handOverRestoredServer(dir: string, socketDirectory: string, port: number, user: string, timeoutMs = 10_000): Promise<void> {
  await rewriteInPlace(join(dir, 'postgresql.conf'), (conf) =>
    conf.replace(/^restore_command = .*$/m, `# restore_command was removed by tidemark when the point-in-time restore finished (${new Date().toISOString()})`));
  await rewriteInPlace(join(dir, 'pg_hba.conf'), (hba) => hba.split('\n').filter((line) => line !== AGENT_ACCESS_LINE).join('\n'));
  const logFile = join(dir, RECOVERY_LOG);
  const reloadsBefore = countReloads(await readFile(logFile, 'utf8').catch(() => ''));
  await withSocketClient(socketDirectory, port, user, 'template1', (client) => client.query('SELECT pg_reload_conf()'));
  // The postmaster logs this line in its SIGHUP handler, which reloads pg_hba.conf before it
  // accepts another connection: from then on every connection meets the source's rules only.
  const deadline = Date.now() + timeoutMs;
  while (countReloads(await readFile(logFile, 'utf8').catch(() => '')) <= reloadsBefore) {
    if (Date.now() > deadline) throw new TidemarkError('RESTORE_FAILED', `the restored server in ${dir} did not reload its configuration within ${timeoutMs / 1000} s; it still admits the agent without a password over ${socketDirectory} (private to its OS user)`);
    await sleep(50);
  }
  await chmod(socketDirectory, 0o755);
}

const countReloads = (logText: string): number => logText.split('received SIGHUP, reloading configuration files').length - 1;

/** Rewrites a file in place, so it keeps its owner and mode. */
async function rewriteInPlace(path: string, change: (text: string) => string): Promise<void> {
  const rewritten = change(await readFile(path, 'utf8'));
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(0);
    await handle.write(rewritten, 0, 'utf8');
  } finally {
    await handle.close();
  }
}
