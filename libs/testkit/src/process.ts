// Child processes for test servers: spawn, wait until ready (a log line or an open TCP port),
// stop (a polite signal, then SIGKILL). Only a bounded tail of the output is kept, enough to
// explain a failed start, so a chatty server never grows the test's memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { readdir, readFile } from 'node:fs/promises';

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Shown in error messages; defaults to the command's base name. */
  readonly name?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Run as this OS user and group (needs root), e.g. postgres, which refuses to run as root. */
  readonly uid?: number;
  readonly gid?: number;
  /**
   * Gives the child a stdin pipe that stays open while this process lives: a child that exits when
   * its stdin closes then dies with the test process even when that is killed (no exit hook runs).
   */
  readonly exitWithParent?: boolean;
}

export interface StartedProcess {
  readonly name: string;
  readonly pid: number | undefined;
  /** Resolves when the process has exited, however it ended. */
  readonly exited: Promise<ProcessExit>;
  hasExited(): boolean;
  /** Resolves once the process has exited and all it wrote to stdout and stderr is read ('exit' can come first). */
  readonly outputRead: Promise<void>;
  /** The last lines the process wrote to stdout and stderr. */
  recentOutput(): string;
  /** Resolves with the first line (already written or still to come) that matches. */
  waitForOutput(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and returns at once (SIGSTOP and SIGCONT freeze and resume it). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` (SIGTERM by default), then SIGKILL after `timeoutMs` (5 s by default); a frozen process is resumed to receive it. */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ProcessExit>;
}

const KEPT_LINES = 200;
const KEPT_LINE_LENGTH = 2000;
const DEFAULT_READY_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Children still running when the test process exits are killed, so an aborted test run never
// leaves servers behind holding ports and temp dirs.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const running of liveChildren) running.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

function baseName(command: string): string {
  return command.split('/').pop() ?? command;
}

function matches(line: string, pattern: RegExp | string): boolean {
  return typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
}

/** Spawns a long-running server process; stdin is closed, stdout and stderr are read line by line. */
export function startProcess(command: string, args: readonly string[], options: SpawnOptions = {}): StartedProcess {
  const name = options.name ?? baseName(command);
  const child = spawn(command, [...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: [options.exitWithParent === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  track(child);

  const lines: string[] = [];
  const lineListeners = new Set<(line: string) => void>();
  const exitListeners = new Set<(exit: ProcessExit) => void>();
  let exit: ProcessExit | undefined;

  const onLine = (line: string) => {
    lines.push(line.length > KEPT_LINE_LENGTH ? `${line.slice(0, KEPT_LINE_LENGTH)}…` : line);
    if (lines.length > KEPT_LINES) lines.shift();
    for (const listener of lineListeners) listener(line);
  };
  const splitLines = (stream: NodeJS.ReadableStream | null) => {
    if (stream === null) return;
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      // A line without a newline for this long is cut rather than kept growing.
      if (partial.length > KEPT_LINE_LENGTH * 4) {
        parts.push(partial);
        partial = '';
      }
      for (const part of parts) onLine(part);
    });
    stream.on('end', () => {
      if (partial !== '') onLine(partial);
      partial = '';
    });
  };
  splitLines(child.stdout);
  splitLines(child.stderr);

  const exited = new Promise<ProcessExit>((resolve) => {
    const finish = (result: ProcessExit) => {
      if (exit !== undefined) return;
      exit = result;
      liveChildren.delete(child);
      for (const listener of exitListeners) listener(result);
      resolve(result);
    };
    child.once('exit', (code, signal) => finish({ code, signal }));
    child.once('error', (error) => {
      onLine(`${name} could not be started: ${error.message}`);
      finish({ code: null, signal: null });
    });
  });

  const outputRead = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const recentOutput = () => lines.join('\n');
  const describeExit = (result: ProcessExit) =>
    result.signal !== null ? `was killed by ${result.signal}` : result.code === null ? 'could not be started' : `exited with code ${result.code}`;

  return {
    name,
    pid: child.pid,
    exited,
    hasExited: () => exit !== undefined,
    outputRead,
    recentOutput,
    waitForOutput(pattern, timeoutMs = DEFAULT_READY_TIMEOUT_MS) {
      const seen = lines.find((line) => matches(line, pattern));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          lineListeners.delete(onNewLine);
          exitListeners.delete(onExit);
        };
        const onNewLine = (line: string) => {
          if (!matches(line, pattern)) return;
          cleanup();
          resolve(line);
        };
        const onExit = (result: ProcessExit) => {
          cleanup();
          reject(new Error(`${name} ${describeExit(result)} before printing ${String(pattern)}; its output:\n${recentOutput()}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name} did not print ${String(pattern)} within ${timeoutMs} ms; its output:\n${recentOutput()}`));
        }, timeoutMs);
        if (exit !== undefined) return onExit(exit);
        lineListeners.add(onNewLine);
        exitListeners.add(onExit);
      });
    },
    signal(signal) {
      if (exit === undefined) child.kill(signal);
    },
    async stop({ signal = 'SIGTERM', timeoutMs = 5000 } = {}) {
      if (exit !== undefined) return exit;
      child.kill(signal);
      // A stopped (SIGSTOP) process only acts on its signal once it runs again.
      if (signal !== 'SIGKILL') child.kill('SIGCONT');
      const result = await Promise.race([exited, sleep(timeoutMs).then(() => undefined)]);
      if (result !== undefined) return result;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a short command to completion (initdb, a CLI) and resolves with its output; rejects
 * with the output's tail when it fails or exceeds `timeoutMs`. Output is capped at 1 MiB.
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { readonly timeoutMs?: number; readonly input?: string } = {},
): Promise<RunResult> {
  const name = options.name ?? baseName(command);
  const cap = 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < cap) stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < cap) stderr += chunk;
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not finish within ${options.timeoutMs} ms; its output:\n${(stdout + stderr).slice(-4000)}`));
    }, options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${name} could not be started from ${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout, stderr });
      const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
      reject(new Error(`${name} ${how}; its output:\n${(stdout + stderr).slice(-4000)}`));
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Waits until something accepts TCP connections on host:port. With `process`, fails fast
 * (with its output) if that process exits first.
 */
export async function waitForPort(
  port: number,
  options: { host?: string; timeoutMs?: number; process?: StartedProcess } = {},
): Promise<void> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const owner = options.process;
    if (owner?.hasExited()) {
      throw new Error(`${owner.name} exited before listening on ${host}:${port}; its output:\n${owner.recentOutput()}`);
    }
    if (await canConnect(host, port)) return;
    await sleep(25);
  }
  const output = options.process ? `; its output:\n${options.process.recentOutput()}` : '';
  throw new Error(`nothing listened on ${host}:${port} within ${timeoutMs} ms${output}`);
}

/** Processes whose command line mentions `text` (to prove a test left nothing behind). */
export async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(entry));
  }
  return found;
}

export interface ExitResult extends RunResult {
  readonly code: number | null;
  readonly ms: number;
}

/**
 * Runs a Node script (the CLI's dist/main.js) to its exit and resolves whatever the exit code,
 * so a test can assert on failures too. `env` is added to this process's environment.
 */
export function runNodeScript(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ExitResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}
