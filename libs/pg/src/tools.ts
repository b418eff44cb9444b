// Spawning the PostgreSQL client tools (pg_dump, pg_restore). Connection settings travel in the
// child's environment only (libpq reads PGHOST, PGPASSWORD, …), never on argv, where `ps` shows them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TidemarkError } from '@tidemark/contracts';

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

// ---------------------------------------------------------------------------------------------
// A tool's output that ends only after a clean exit

export interface ToolSettled {
  readonly exit: ToolExit;
  /** Why reading the tool's stdout through the stages failed, if it did (the tool was then killed). */
  readonly pipeError: unknown;
}

export interface GuardedToolOutput {
  /**
   * The tool's stdout after the stages. It errors with the first recorded failure and ends only
   * when the caller calls `end()`: a tool that died half way can never look like a short but
   * complete output to whoever stores it.
   */
  readonly output: Readable;
  /** The first failure recorded (abort, fail()), if any. */
  readonly failure: TidemarkError | undefined;
  /** Records a failure (the first one wins), kills the tool and errors the output. */
  fail(error: TidemarkError): void;
  /**
   * Resolves once the tool has exited and all it wrote has passed the stages (or the pipe broke).
   * The caller then decides, in its own order of precedence, between fail() and end().
   */
  readonly settled: Promise<ToolSettled>;
  /** Ends the output; does nothing after a failure. */
  end(): void;
}

const OUTPUT_BUFFER_BYTES = 256 * 1024;

export interface GuardOptions {
  /** Aborting records `aborted()` as the failure. */
  readonly signal?: AbortSignal | undefined;
  readonly aborted: () => TidemarkError;
  /** Called once, with the first failure (to close a session the tool depends on, say). */
  readonly onFail?: (error: TidemarkError) => void;
}

/**
 * Pipes a spawned tool's stdout through `stages` into an output that only the caller ends. The
 * output stays out of the internal pipeline, so a broken pipe never errors it with a raw stream
 * error: the caller turns `settled.pipeError` into its own TidemarkError.
 */
export function guardToolOutput(tool: RunningTool, stages: readonly Transform[], options: GuardOptions): GuardedToolOutput {
  const stdout = tool.child.stdout;
  if (!stdout) throw new Error('guardToolOutput needs a tool spawned with stdout: true');
  // Room for a few pipe reads: with the 16 KiB default each (larger) read from the pipe stalls the
  // chain once. With 256 KiB, a 330 MB base backup read through here took as long as reading
  // pg_basebackup's stdout directly (2 cores, noisy: 1.1-2.9 s either way).
  const output = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
  let failure: TidemarkError | undefined;
  let ended = false;
  const fail = (error: TidemarkError) => {
    if (failure !== undefined || ended) return;
    failure = error;
    tool.kill();
    output.destroy(error);
    options.onFail?.(error);
  };
  // A consumer that went away (a failed upload, say) leaves the tool nowhere to write.
  output.once('close', () => {
    if (!ended) tool.kill();
  });
  // When the consumer failed (a stalled upload, say) and destroyed the output with its error, that
  // error is why the tool's pipe broke: it travels on as the pipe error, so it is what gets reported.
  const closedEarly = (): Error => (output.errored as Error | null) ?? new Error('the output was closed before the tool finished');
  const sink = new Writable({
    highWaterMark: OUTPUT_BUFFER_BYTES,
    write(chunk: Buffer, _encoding, done) {
      if (output.destroyed) return done(closedEarly());
      if (output.write(chunk)) return done();
      const onDrain = () => {
        output.off('close', onClose);
        done();
      };
      const onClose = () => {
        output.off('drain', onDrain);
        done(closedEarly());
      };
      output.once('drain', onDrain);
      output.once('close', onClose);
    },
  });
  const steps = [stdout, ...stages, sink] as unknown as Parameters<typeof pipeline>;
  const piped = pipeline(...steps).then(
    () => undefined,
    (error: unknown) => {
      tool.kill();
      return error ?? new Error('the pipe broke');
    },
  );
  const onAbort = () => fail(options.aborted());
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const settled = (async (): Promise<ToolSettled> => {
    const exit = await tool.exited;
    const pipeError = await piped;
    options.signal?.removeEventListener('abort', onAbort);
    return { exit, pipeError };
  })();
  if (options.signal?.aborted) onAbort();
  return {
    output,
    get failure() {
      return failure;
    },
    fail,
    settled,
    end() {
      if (failure !== undefined || ended) return;
      ended = true;
      output.end();
    },
  };
}
