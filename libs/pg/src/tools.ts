// Spawning the PostgreSQL client tools (pg_dump, pg_restore). Connection settings travel in the
// child's environment only (libpq reads PGHOST, PGPASSWORD, …), never on argv, where `ps` shows them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export type PgTool = 'pg_dump' | 'pg_restore' | 'pg_basebackup' | 'pg_verifybackup' | 'pg_receivewal';

const DEBIAN_PG_ROOT = '/usr/lib/postgresql';

/**
 * Where a tool lives: TIDEMARK_PG_BIN when set, else the newest /usr/lib/postgresql/<v>/bin (Debian
 * installs versioned binaries there; pg_dump must be at least as new as the server), else PATH.
 */
export function pgToolPath(tool: PgTool, env: NodeJS.ProcessEnv = process.env): string {
  const configured = env['TIDEMARK_PG_BIN'];
  if (configured) return join(configured, tool);
  if (existsSync(DEBIAN_PG_ROOT)) {
    const versions = readdirSync(DEBIAN_PG_ROOT)
      .filter((v) => /^\d+$/.test(v) && existsSync(join(DEBIAN_PG_ROOT, v, 'bin', tool)))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(DEBIAN_PG_ROOT, versions[0], 'bin', tool);
  }
  return tool;
}

// Only what a tool needs from our own environment: never pass on the encryption key or S3 secrets.
const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'TMPDIR'];

export function toolEnvironment(pgEnv: NodeJS.ProcessEnv, parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (parent[name] !== undefined) env[name] = parent[name];
  return { ...env, ...pgEnv };
}

export interface ToolExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunningTool {
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its output streams have closed. */
  readonly exited: Promise<ToolExit>;
  /** The last lines the tool wrote to stderr (libpq never prints the password). */
  stderrTail(lines?: number): string;
  /** Whether stderr contained an error line (pg tools prefix them with "error:"). */
  readonly reportedError: boolean;
  kill(): void;
}

const STDERR_KEEP_BYTES = 16 * 1024;

/** `childEnv` is all the tool sees; `parentEnv` only locates the binary (TIDEMARK_PG_BIN). */
export function spawnTool(tool: PgTool, args: readonly string[], childEnv: NodeJS.ProcessEnv, stdio: { stdin: boolean; stdout: boolean }, parentEnv: NodeJS.ProcessEnv = process.env): RunningTool {
  const child = spawn(pgToolPath(tool, parentEnv), args, {
    env: childEnv,
    stdio: [stdio.stdin ? 'pipe' : 'ignore', stdio.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
  let stderr = '';
  let reportedError = false;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (/\berror:/i.test(chunk)) reportedError = true;
    stderr = (stderr + chunk).slice(-STDERR_KEEP_BYTES);
  });
  const exited = new Promise<ToolExit>((resolve) => {
    child.once('error', (error) => {
      stderr += `\ncould not start ${tool}: ${error.message}`;
      reportedError = true;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    exited,
    stderrTail(lines = 5) {
      return stderr.trim().split('\n').slice(-lines).join('\n');
    },
    get reportedError() {
      return reportedError;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

export function describeExit(tool: PgTool, exit: ToolExit, stderrTail: string): string {
  const how = exit.signal ? `was killed by ${exit.signal}` : exit.code === null ? 'could not run' : `exited with code ${exit.code}`;
  return `${tool} ${how}${stderrTail ? `: ${stderrTail}` : ''}`;
}
