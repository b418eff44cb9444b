// Verifying a physical base backup. PostgreSQL 15's pg_verifybackup works only on a plain data
// directory, so the tar is extracted first (streaming, file by file), checked against its own
// backup_manifest (`-n`: WAL is checked separately), and can then be started as a sandbox server
// that replays the WAL shipped in pg_wal/ to consistency and promotes.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, opendir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { TidemarkError } from '@tidemark/contracts';
import { TarReader, type TarEntry } from './base-backup.js';
import { spawnTool, toolEnvironment, type PgTool } from './tools.js';
import { osUserIds } from './os-user.js';
import { pgSocketPath, socketPathFits } from './reachable.js';

const PG_VERIFYBACKUP: PgTool = 'pg_verifybackup';

export interface ExtractResult {
  readonly files: number;
  readonly directories: number;
  readonly bytes: number;
}

/** A tar member's path inside `dir`; refuses absolute paths and `..` (INTEGRITY_FORMAT). */
function safePath(dir: string, name: string): string {
  const relative = normalize(name.replace(/\/+$/, ''));
  if (relative === '' || relative === '.') return dir;
  if (isAbsolute(relative) || relative === '..' || relative.startsWith(`..${sep}`)) {
    throw new TidemarkError('INTEGRITY_FORMAT', `the backup tar has an entry outside its directory (${name}); refusing to extract it`);
  }
  return join(dir, relative);
}

/**
 * Extracts a tar stream (regular files and directories; pax headers skipped) into `dir`, which is
 * created (0700) when missing. Files are created exclusively, so existing files are never
 * overwritten. Memory stays flat: each chunk is written before the next is read.
 */
export async function extractTar(input: Readable, dir: string): Promise<ExtractResult> {
  // The input's errors surface through the iteration below; one raised before it starts (a
  // decoder missing its key fails at once, while mkdir is awaited) must not go unhandled.
  input.on('error', () => undefined);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let handle: FileHandle | undefined;
  let files = 0;
  let directories = 0;
  let bytes = 0;
  const reader = new TarReader({
    async entry(entry: TarEntry) {
      const path = safePath(dir, entry.name);
      if (entry.type === 'directory') {
        await mkdir(path, { recursive: true, mode: 0o700 });
        await chmod(path, entry.mode & 0o777 || 0o700);
        directories += 1;
      } else if (entry.type === 'file') {
        await mkdir(dirname(path), { recursive: true, mode: 0o700 });
        handle = await open(path, 'wx', entry.mode & 0o777 || 0o600);
        files += 1;
      } else {
        throw new TidemarkError('INTEGRITY_FORMAT', `the backup tar has an unsupported ${entry.type} entry ${entry.name} (typeflag ${JSON.stringify(entry.typeflag)}); tablespaces and links are not supported`);
      }
    },
    async data(_entry, chunk) {
      let written = 0;
      while (written < chunk.length) written += (await (handle as FileHandle).write(chunk, written, chunk.length - written)).bytesWritten;
      bytes += chunk.length;
    },
    async entryEnd(entry) {
      if (entry.type === 'file') {
        const closing = handle;
        handle = undefined;
        await closing?.close();
      }
    },
  });
  try {
    for await (const chunk of input) await reader.push(chunk as Buffer);
    reader.finish();
  } catch (error) {
    input.destroy();
    throw error instanceof TidemarkError ? error : new TidemarkError('INTEGRITY_FORMAT', `extracting the base backup into ${dir} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    await handle?.close().catch(() => undefined);
  }
  return { files, directories, bytes };
}

// pg_verifybackup's complaints that mean "the files differ from what the manifest recorded".
const MISMATCH = /checksum mismatch|has size \d+ on disk but size \d+ in the manifest|present on disk but not in the manifest|present in the manifest but not on disk|could not read file|should contain/i;

/**
 * Runs `pg_verifybackup -n` on an extracted base backup (WAL is checked separately). Resolves when
 * every file matches PostgreSQL's backup_manifest; otherwise INTEGRITY_CHECKSUM_MISMATCH (files
 * differ, are missing or extra) or INTEGRITY_FORMAT (no or unreadable manifest), with the tool's
 * message.
 */
export async function verifyBaseBackup(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const tool = spawnTool(PG_VERIFYBACKUP, ['--no-parse-wal', '--exit-on-error', dir], toolEnvironment({}, env), { stdin: false, stdout: false }, env);
  const exit = await tool.exited;
  if (exit.code === 0 && !tool.reportedError) return;
  const message = tool.stderrTail(5).replace(/^pg_verifybackup: (error: )?/gm, '').replace(/\n/g, '; ');
  if (exit.code === null && exit.signal === null) throw new TidemarkError('CONFIG_INVALID', `pg_verifybackup could not run (${message}); install the postgresql client tools or set TIDEMARK_PG_BIN`);
  if (MISMATCH.test(message)) throw new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', `the base backup in ${dir} does not match its backup_manifest: ${message}; restore from another backup`);
  throw new TidemarkError('INTEGRITY_FORMAT', `the base backup in ${dir} could not be verified: ${message || `pg_verifybackup exited with code ${exit.code}`}; check that it was extracted completely with its backup_manifest`);
}

// ---------------------------------------------------------------------------------------------
// Starting a server from an extracted base backup

export interface StartFromBaseBackupOptions {
  /** Role used to check readiness over the private unix socket (trust); 'postgres' by default. */
  readonly user?: string;
  /** Database for that check; 'template1' by default (it exists in every cluster). */
  readonly database?: string;
  /** OS user that owns and runs the server when we are root; TIDEMARK_PG_OS_USER or 'postgres'. */
  readonly osUser?: string;
  /** PostgreSQL's restore_command; the default fetches nothing (the WAL is in pg_wal/). */
  readonly restoreCommand?: string;
  /** How long recovery may take before TIMEOUT; 120 s by default. */
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

export interface BaseBackupServer {
  readonly host: string;
  readonly port: number;
  /** The unix socket directory (the data directory itself, 0700). */
  readonly socketDir: string;
  /** Fast shutdown (SIGINT), then SIGKILL after 30 s. Safe to call twice. */
  stop(): Promise<void>;
}

const STDERR_KEEP = 16 * 1024;
const HOST = '127.0.0.1';

export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for await (const entry of await opendir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, uid, gid);
    else await chown(path, uid, gid);
  }
}

/** The `postgres` server binary of a major version: TIDEMARK_PG_BIN, else Debian's versioned directory. */
export function postgresBinary(major: string, env: NodeJS.ProcessEnv): string {
  const configured = env['TIDEMARK_PG_BIN'];
  if (configured) return join(configured, 'postgres');
  const debian = `/usr/lib/postgresql/${major}/bin/postgres`;
  if (existsSync(debian)) return debian;
  throw new TidemarkError('RESTORE_FAILED', `the backup is of postgresql ${major}, whose server binaries are not in /usr/lib/postgresql/${major}/bin; install postgresql-${major} or set TIDEMARK_PG_BIN`);
}

/** A postgresql.conf string literal. */
export const quoteConf = (value: string) => `'${value.replace(/'/g, "''")}'`;

/** Keeps the source's file as <name>.source; a second preparation (a retry) keeps the first copy. */
async function setAside(dir: string, name: string): Promise<void> {
  const path = join(dir, name);
  if (existsSync(path) && !existsSync(`${path}.source`)) await rename(path, `${path}.source`);
}

/** The environment a restored server gets from ours: no libpq or Tidemark variables, no secrets. */
export function serverEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (!key.startsWith('PG') && !key.startsWith('TIDEMARK_') && /^(PATH|HOME|LANG|LC_\w+|TZ|TMPDIR)$/.test(key)) childEnv[key] = value;
  return childEnv;
}

export interface RecoveryDirectoryOptions {
  /** OS user that owns and runs the server when we are root; TIDEMARK_PG_OS_USER or 'postgres'. */
  readonly osUser?: string;
  /** Address the server listens on; 127.0.0.1 by default. */
  readonly listenAddress?: string;
  /** PostgreSQL's restore_command (PostgreSQL 12+ refuses archive recovery without one). */
  readonly restoreCommand: string;
  /** recovery_target* lines (already formatted), e.g. "recovery_target = 'immediate'". */
  readonly recoveryTarget: readonly string[];
  /** Further lines appended to postgresql.conf (logging, say). */
  readonly extraSettings?: readonly string[];
  /**
   * Keep the source's configuration and authentication (a restore someone will use) instead of a
   * minimal sandbox config that only the directory's owner can log into (the verifier's proof).
   */
  readonly keepSource?: KeepSourceConfiguration;
  readonly env?: NodeJS.ProcessEnv;
}

export interface KeepSourceConfiguration {
  /**
   * The server's unix socket directory, outside the data directory so others can use it. Created
   * 0700: while recovery runs it is the only way in for the agent (see AGENT_ACCESS_LINE).
   */
  readonly socketDirectory: string;
}

/**
 * The first pg_hba.conf line while a restore recovers and is checked: trust over the unix socket,
 * whose directory is 0700 (only root and the server's OS user, who own the data files anyway,
 * can reach it). The agent needs no credential that the source's own rules accept; the line is
 * removed, and the socket directory opened, before the restore is reported complete.
 */
export const AGENT_ACCESS_LINE = 'local all all trust # tidemark: the restoring agent only, removed when the restore completes';

/**
 * Authentication for a base backup whose pg_hba.conf lived outside the data directory (Debian keeps
 * it in /etc/postgresql): passwords, for every role, from anywhere the server listens. md5 accepts
 * SCRAM-stored passwords too.
 */
export const FALLBACK_HBA = '# Written by tidemark: the base backup had no pg_hba.conf.\nlocal all all md5\nhost all all all md5\n';

/**
 * What a restored server must not take from the source's configuration: paths that lead out of the
 * restore (its data directory, auth files, pid file) and log output the agent cannot read.
 */
function pinnedToRestore(dir: string): string[] {
  return [
    `data_directory = ${quoteConf(dir)}`,
    `hba_file = ${quoteConf(join(dir, 'pg_hba.conf'))}`,
    `ident_file = ${quoteConf(join(dir, 'pg_ident.conf'))}`,
    "external_pid_file = ''",
    "log_destination = 'stderr'",
    'log_min_messages = warning',
    "lc_messages = 'C'",
  ];
}

export interface PreparedRecoveryDirectory {
  /** The server binary matching the backup's PG_VERSION. */
  readonly postgres: string;
  readonly major: string;
  /** Who the server runs as (undefined: as us). */
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
}

/**
 * Turns an extracted base backup into a directory that starts in archive recovery on `port`.
 *
 * As a sandbox (the default): the source's postgresql.conf, postgresql.auto.conf and pg_hba.conf
 * are set aside (as *.source) for a minimal config (listen address, port, the data directory as the
 * 0700 unix socket directory, trust over it), so only the directory's owner can connect.
 *
 * With `keepSource`: the source's settings stay in force (postgresql.conf includes the *.source
 * files) and only what a restore must change follows them: listen address, port, socket
 * directory, archiving off, restore_command and the recovery target, plus pinnedToRestore. The
 * source's pg_hba.conf and pg_ident.conf stay as they are, with AGENT_ACCESS_LINE on top.
 *
 * Either way: no hot standby, recovery.signal asks for archive recovery, and everything is chowned
 * to the OS user. Every directory above `dir` must be traversable by that user.
 */
export async function prepareRecoveryDirectory(dir: string, port: number, options: RecoveryDirectoryOptions): Promise<PreparedRecoveryDirectory> {
  const env = options.env ?? process.env;
  const socketDirectory = options.keepSource?.socketDirectory ?? dir;
  const socketPath = pgSocketPath(socketDirectory, port);
  if (!socketPathFits(socketPath)) throw new TidemarkError('CONFIG_INVALID', `the restore directory path ${dir} is too long for a unix socket (${socketPath}); use a shorter one`);
  const major = (await readFile(join(dir, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
  if (!/^\d+$/.test(major)) throw new TidemarkError('INTEGRITY_FORMAT', `${dir} has no PG_VERSION file; it is not an extracted base backup`);
  const postgres = postgresBinary(major, env);
  const owner = await osUserIds(options.osUser ?? env['TIDEMARK_PG_OS_USER'] ?? 'postgres');

  const keepSource = options.keepSource !== undefined;
  for (const name of ['postgresql.conf', 'postgresql.auto.conf', ...(keepSource ? [] : ['pg_hba.conf'])]) await setAside(dir, name);
  await rm(join(dir, 'standby.signal'), { force: true });
  const conf = [
    keepSource
      ? '# Written by tidemark: a restored server. The source\'s settings are included first; the lines after them are what a restore changes.'
      : '# Written by tidemark: a server started from a base backup. The source settings are in *.source.',
    ...(keepSource ? ["include_if_exists 'postgresql.conf.source'", "include_if_exists 'postgresql.auto.conf.source'", ...pinnedToRestore(dir)] : []),
    `listen_addresses = ${quoteConf(options.listenAddress ?? HOST)}`,
    `port = ${port}`,
    `unix_socket_directories = ${quoteConf(socketDirectory)}`,
    ...(keepSource ? [] : ['unix_socket_permissions = 0700']),
    // Without hot standby no one connects before promotion, and the standby parameter checks
    // (max_connections and friends at least the source's) do not apply.
    'hot_standby = off',
    'archive_mode = off',
    `restore_command = ${quoteConf(options.restoreCommand)}`,
    ...options.recoveryTarget,
    ...(options.extraSettings ?? []),
    '',
  ].join('\n');
  await writeFile(join(dir, 'postgresql.conf'), conf, { mode: 0o600 });
  await writeFile(join(dir, 'postgresql.auto.conf'), '', { mode: 0o600 });
  if (keepSource) {
    const hbaPath = join(dir, 'pg_hba.conf');
    const hba = (await readFile(hbaPath, 'utf8').catch(() => undefined)) ?? FALLBACK_HBA;
    // A second preparation (a retry on another port) finds the line already there.
    if (!hba.startsWith(AGENT_ACCESS_LINE)) await writeFile(hbaPath, `${AGENT_ACCESS_LINE}\n${hba}`, { mode: 0o600 });
    await mkdir(socketDirectory, { recursive: true, mode: 0o700 });
    await chmod(socketDirectory, 0o700);
    if (owner !== undefined) await chown(socketDirectory, owner.uid, owner.gid);
  } else {
    // The socket lives in the 0700 data directory, so only its owner and root can use the trust line.
    await writeFile(join(dir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 md5\n', { mode: 0o600 });
  }
  if (!existsSync(join(dir, 'pg_ident.conf'))) await writeFile(join(dir, 'pg_ident.conf'), '', { mode: 0o600 });
  // PostgreSQL 12+ reads recovery settings from the config; the signal file's content is ignored.
  await writeFile(join(dir, 'recovery.signal'), '', { mode: 0o600 });
  await chmod(dir, 0o700);
  if (owner !== undefined) await chownTree(dir, owner.uid, owner.gid);
  return { postgres, major, owner };
}

/**
 * Starts a server on `port` from an extracted (and already verified: this changes the directory)
 * base backup: the source's postgresql.conf, postgresql.auto.conf and pg_hba.conf are set aside
 * (as *.source) for a minimal sandbox config, recovery.signal asks for recovery to the end of the
 * backup (recovery_target = 'immediate') and promotion. Every directory above `dir` must be
 * traversable by the postgres OS user. Resolves once the server accepts connections and is out of
 * recovery.
 */
export async function startFromBaseBackup(dir: string, port: number, options: StartFromBaseBackupOptions = {}): Promise<BaseBackupServer> {
  const env = options.env ?? process.env;
  const { postgres, owner } = await prepareRecoveryDirectory(dir, port, {
    env,
    ...(options.osUser !== undefined ? { osUser: options.osUser } : {}),
    // The WAL is in pg_wal/ unless the caller fetches it.
    restoreCommand: options.restoreCommand ?? 'false',
    recoveryTarget: ["recovery_target = 'immediate'", "recovery_target_action = 'promote'"],
  });

  const child: ChildProcess = spawn(postgres, ['-D', dir], {
    cwd: dir,
    env: serverEnvironment(env),
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(owner ?? {}),
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      stderr += `\ncould not start postgres: ${error.message}`;
      exited = true;
      resolve();
    });
    child.once('close', () => {
      exited = true;
      resolve();
    });
  });
  const tail = () => stderr.trim().split('\n').slice(-5).join('; ');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (exited) return;
      child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exit;
      clearTimeout(killer);
    })());

  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const user = options.user ?? 'postgres';
  const database = options.database ?? 'template1';
  try {
    for (;;) {
      if (exited) throw new TidemarkError('RESTORE_FAILED', `postgres exited while recovering the base backup in ${dir}: ${tail()}`);
      const client = new pg.Client({ host: dir, port, user, database, connectionTimeoutMillis: 5000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        const { rows } = await client.query<{ recovering: boolean }>('SELECT pg_is_in_recovery() AS recovering');
        if (rows[0]?.recovering === false) break;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === '28000' || code === '3D000') {
          throw new TidemarkError('CONFIG_INVALID', `the restored server is up but refused ${user}@${database} (${(error as Error).message}); pass a user and database that exist in the source`);
        }
      } finally {
        await client.end().catch(() => undefined);
      }
      if (Date.now() > deadline) throw new TidemarkError('TIMEOUT', `the server restored in ${dir} did not finish recovery in time: ${tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { host: HOST, port, socketDir: dir, stop };
}
