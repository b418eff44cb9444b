#!/usr/bin/env node
// tidemark: the command-line client. Wiring only: parse → connect → run a command → exit code.
import { toErrorInfo, TidemarkError } from '@tidemark/contracts';
import { USAGE, parseArgs, type Command } from './args.js';
import { connectCli } from './connect.js';
import { buildBackupRequest, runBackup } from './commands/backup.js';
import { runList, runStatus } from './commands/list.js';
import type { Io } from './commands/request.js';
import { buildRestoreRequest, runRestore } from './commands/restore.js';
import { runWatch } from './commands/watch.js';
import { runLs } from './commands/ls.js';
import { inCliTerms } from './cli-terms.js';

const io: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  progress: { isTTY: process.stderr.isTTY === true, write: (raw) => process.stderr.write(raw) },
};

/** Default seconds to wait: quick for catalog questions, long for a backup or restore to finish, no limit for watch. */
function defaultTimeoutSeconds(command: Command): number | undefined {
  if (command.name === 'watch') return undefined;
  if (command.name === 'ls') return 30; // a large tree is read from the bucket to answer
  return (command.name === 'backup' || command.name === 'restore') && command.wait ? 3600 : 5;
}

/** 2 for a usage problem or a timeout, 1 for anything else that failed. */
function exitCodeFor(error: unknown): number {
  if (error instanceof TidemarkError && (error.code === 'TIMEOUT' || error.code === 'COMMAND_INVALID')) return 2;
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, process.env);
  if (!parsed.ok) {
    io.err(`tidemark: ${parsed.error}`);
    return 2;
  }
  const { globals, command } = parsed;
  if (command.name === 'help') {
    io.out(USAGE);
    return 0;
  }
  const timeoutSeconds = globals.timeoutSeconds ?? defaultTimeoutSeconds(command);
  try {
    // Validate the message before connecting, so a bad --into or --reason is a usage error.
    if (command.name === 'backup') buildBackupRequest(command, 'preflight');
    if (command.name === 'restore') buildRestoreRequest(command, 'preflight');
  } catch (error) {
    return fail(error, globals.json);
  }
  let nc;
  try {
    nc = await connectCli(globals.natsUrl, process.env);
  } catch (error) {
    return fail(error, globals.json);
  }
  try {
    if (command.name === 'watch') {
      const interrupted = new AbortController();
      process.once('SIGINT', () => interrupted.abort());
      return await runWatch(command.subject, {
        nc, io, json: globals.json, timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000, count: command.count, signal: interrupted.signal,
      });
    }
    const deps = { nc, js: nc.jetstream(), io, json: globals.json, timeoutMs: (timeoutSeconds ?? 5) * 1000 };
    switch (command.name) {
      case 'backup':
        return await runBackup(command, deps);
      case 'restore':
        return await runRestore(command, deps);
      case 'list':
        return await runList(command, deps);
      case 'ls':
        return await runLs(command, deps);
      case 'status':
        return await runStatus(deps);
    }
  } catch (error) {
    return fail(error, globals.json);
  } finally {
    await nc.close().catch(() => {});
  }
}

function fail(error: unknown, json: boolean): number {
  const info = toErrorInfo(error);
  if (json) io.out(JSON.stringify({ error: info }));
  else io.err(`tidemark: ${inCliTerms(info.message)} [${info.code}]`);
  return exitCodeFor(error);
}

process.exitCode = await main(process.argv.slice(2));
