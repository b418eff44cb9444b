// Following a request's events. The followers are pure: an event in, a progress line and maybe
// an exit code out. Transport (subscriptions, decoding, timeouts) lives in watch.ts.
import type {
  ArtifactStored, BackupCompleted, BackupFailed, BackupStarted, CommandRejected, ErrorInfo,
  RestoreCompleted, RestoreFailed, RestoreStarted, VerifyFailed, VerifyPassed,
} from '@tidemark/contracts';
import { userInfo } from 'node:os';
import { parseCommandSubject } from '@tidemark/contracts';
import { formatBytes, formatDuration } from '../format.js';
import { inCliTerms, type CliScope } from '../cli-terms.js';

export type FollowedEvent =
  | { readonly type: 'backup.started'; readonly event: BackupStarted }
  | { readonly type: 'backup.completed'; readonly event: BackupCompleted }
  | { readonly type: 'backup.failed'; readonly event: BackupFailed }
  | { readonly type: 'artifact.stored'; readonly event: ArtifactStored }
  | { readonly type: 'verify.passed'; readonly event: VerifyPassed }
  | { readonly type: 'verify.failed'; readonly event: VerifyFailed }
  | { readonly type: 'restore.started'; readonly event: RestoreStarted }
  | { readonly type: 'restore.completed'; readonly event: RestoreCompleted }
  | { readonly type: 'restore.failed'; readonly event: RestoreFailed }
  | { readonly type: 'command.rejected'; readonly event: CommandRejected };

export type Outcome = 'verified' | 'stored' | 'restored' | 'failed' | 'rejected';

export interface Step {
  /** A progress line for people. */
  readonly line?: string;
  /** Set when the wait is over. */
  readonly exitCode?: 0 | 1;
  readonly outcome?: Outcome;
  readonly artifactId?: string;
  readonly error?: ErrorInfo;
}

export interface Follower {
  /** Whether the event belongs to the followed request. */
  matches(followed: FollowedEvent): boolean;
  step(followed: FollowedEvent): Step;
}

/** An agent's error as a CLI user reads it: flags instead of message fields (cli-terms.ts). */
const describeError = (error: ErrorInfo, scope: CliScope | undefined) => `${error.code}: ${inCliTerms(error.message, scope)}`;

const scopeOf = (commandSubject: string): CliScope | undefined => {
  const parsed = parseCommandSubject(commandSubject);
  return 'error' in parsed ? undefined : parsed;
};

/**
 * A rejection of our command subject. Rejections by the intake (no stream sequence) are about
 * the subject itself; a consumer's rejection carries a payload preview that names our request.
 */
function isOurRejection(event: CommandRejected, commandSubject: string, requestId: string): boolean {
  if (event.subject !== commandSubject) return false;
  return event.streamSequence === undefined || event.payloadPreview.includes(requestId);
}

export function backupFollower(requestId: string, commandSubject: string): Follower {
  const scope = scopeOf(commandSubject);
  // The verifier's events carry the artifact; remember the artifacts our request produced.
  const artifacts = new Set<string>();
  return {
    matches(followed) {
      if (followed.type === 'command.rejected') return isOurRejection(followed.event, commandSubject, requestId);
      if ('requestId' in followed.event && followed.event.requestId === requestId) return true;
      return (followed.type === 'verify.passed' || followed.type === 'verify.failed') && artifacts.has(followed.event.artifactId);
    },
    step(followed) {
      switch (followed.type) {
        case 'backup.started': {
          const e = followed.event;
          artifacts.add(e.artifactId);
          return { line: `started: ${e.kind} backup ${e.artifactId} on ${e.agentId} (attempt ${e.attempt})`, artifactId: e.artifactId };
        }
        case 'backup.completed': {
          const e = followed.event;
          artifacts.add(e.artifactId);
          // A files snapshot's stored bytes are its tree's: its new chunks went to the shared repository.
          const line = e.kind === 'tree'
            ? `snapshot: tree of ${formatBytes(e.storedBytes)} written in ${formatDuration(e.durationMs)} (new chunks in the bucket's chunk repository)`
            : `dumped: ${formatBytes(e.storedBytes)} in ${formatDuration(e.durationMs)}`;
          return { line: e.problemsCount ? `${line}\n${problemLines(e)}` : line };
        }
        case 'backup.failed': {
          const e = followed.event;
          // The agent's message says that it will be retried (and which attempt this was).
          if (!e.final) return { line: `attempt ${e.attempt} failed: ${describeError(e.error, scope)}` };
          return { line: `backup failed: ${describeError(e.error, scope)}`, exitCode: 1, outcome: 'failed', error: e.error };
        }
        case 'artifact.stored': {
          const e = followed.event;
          artifacts.add(e.artifactId);
          const line = `stored: ${e.artifactId}, ${formatBytes(e.storedBytes)}, sha256 ${e.sha256.slice(0, 12)}…`;
          if (!e.verify) return { line: `${line} (verification not required)`, exitCode: 0, outcome: 'stored', artifactId: e.artifactId };
          return { line: `${line}; waiting for verification`, artifactId: e.artifactId };
        }
        case 'verify.passed': {
          const e = followed.event;
          return { line: `verified: ${e.checks.length} checks passed in ${formatDuration(e.durationMs)}`, exitCode: 0, outcome: 'verified', artifactId: e.artifactId };
        }
        case 'verify.failed': {
          const e = followed.event;
          const failing = e.checks.filter((c) => !c.ok).map((c) => c.name);
          const checks = failing.length > 0 ? ` (failed checks: ${failing.join(', ')})` : '';
          return { line: `verification failed: ${describeError(e.error, scope)}${checks}`, exitCode: 1, outcome: 'failed', artifactId: e.artifactId, error: e.error };
        }
        case 'command.rejected':
          return { line: `rejected: ${describeError(followed.event.error, scope)}`, exitCode: 1, outcome: 'rejected', error: followed.event.error };
        default:
          return {};
      }
    },
  };
}

/** files: the paths a backup could not store as they were (it committed; they are reported, never stored silently). */
export function problemLines(e: Pick<BackupCompleted, 'problemsCount' | 'problems'>): string {
  const listed = e.problems ?? [];
  const more = (e.problemsCount ?? 0) - listed.length;
  return [
    `problems: ${e.problemsCount} path(s) not stored as they were`,
    ...listed.map((p) => `  ${p.problem}: ${p.path}${p.detail ? ` (${p.detail})` : ''}`),
    ...(more > 0 ? [`  … and ${more} more (the snapshot's manifest lists the first 1000)`] : []),
  ].join('\n');
}

/** A point-in-time restore's result: where the server runs, where it recovered to, the RTO split and the checks. */
export function pointInTimeLines(e: RestoreCompleted, runner: CommandRunner = thisUser()): string {
  const kept = e.previousDatabaseKeptAs ? `; the previous data directory is kept as ${e.previousDatabaseKeptAs}` : '';
  const lines = [`restored: ${e.artifactId} into ${e.dataDirectory} in ${formatDuration(e.durationMs)}${kept}`];
  if (e.port !== undefined) {
    const host = e.host ?? '127.0.0.1';
    const socket = e.socketDirectory ? ` and the socket in ${e.socketDirectory}` : '';
    lines.push(`server: on the pg-agent's host, listening on ${host}:${e.port}${socket}; data directory ${e.dataDirectory}; it keeps running`);
    if (e.connectAs) lines.push(`connect: psql ${shellWord(`host=${host} port=${e.port} user=${e.connectAs.user} dbname=${e.connectAs.database}`)}   (the source's roles and passwords)`);
    lines.push(`stop: ${pgCtlStop(e.dataDirectory!, e.osUser, e.binDirectory, runner)}`);
  }
  if (e.recoveredTo) {
    const last = e.recoveredTo.lastTransactionAt ? `, last transaction committed at ${e.recoveredTo.lastTransactionAt}` : '';
    lines.push(`recovered to: LSN ${e.recoveredTo.lsn} on new timeline ${e.recoveredTo.timeline}${last}`);
  }
  if (e.rto) {
    const files = e.rto.walFilesFetched !== undefined ? ` (${e.rto.walFilesFetched} WAL file${e.rto.walFilesFetched === 1 ? '' : 's'} fetched)` : '';
    lines.push(`RTO: download ${formatDuration(e.rto.downloadMs)}, WAL replay ${formatDuration(e.rto.replayMs)}, start ${formatDuration(e.rto.startMs)}, total ${formatDuration(e.rto.totalMs)}${files}`);
  }
  if (e.checks) {
    const failing = e.checks.filter((c) => !c.ok);
    lines.push(`checks: ${e.checks.length - failing.length} of ${e.checks.length} passed${failing.map((c) => `; failed: ${c.name}${c.detail ? ` (${c.detail})` : ''}`).join('')}`);
  }
  return lines.join('\n');
}

/** Who runs the printed commands: this CLI's user. */
export interface CommandRunner {
  readonly uid: number | undefined;
  readonly username: string;
}

const thisUser = (): CommandRunner => ({ uid: process.getuid?.(), username: safeUsername() });

function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return '';
  }
}

/** A word for a POSIX shell: as it is when it needs no quoting, else single-quoted. */
export const shellWord = (value: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`);

/**
 * The command that stops a restored server, for the user running the CLI: pg_ctl refuses to run
 * as root, so root goes through runuser to the server's OS user, and anyone else but that user
 * through sudo. Older events name neither the OS user nor the binaries: postgres and pg_ctl on PATH.
 */
export function pgCtlStop(dataDirectory: string, osUser = 'postgres', binDirectory?: string, runner: CommandRunner = thisUser()): string {
  const pgCtl = `${shellWord(binDirectory === undefined ? 'pg_ctl' : `${binDirectory}/pg_ctl`)} -D ${shellWord(dataDirectory)} stop`;
  if (runner.uid === 0) return `runuser -u ${shellWord(osUser)} -- ${pgCtl}`;
  if (runner.username === osUser) return pgCtl;
  return `sudo -u ${shellWord(osUser)} ${pgCtl}`;
}

export function restoreFollower(requestId: string, commandSubject: string): Follower {
  const scope = scopeOf(commandSubject);
  return {
    matches(followed) {
      if (followed.type === 'command.rejected') return isOurRejection(followed.event, commandSubject, requestId);
      return 'requestId' in followed.event && followed.event.requestId === requestId;
    },
    step(followed) {
      switch (followed.type) {
        case 'restore.started': {
          const e = followed.event;
          return { line: `started: restoring ${e.artifactId} into ${e.database} on ${e.agentId}`, artifactId: e.artifactId };
        }
        case 'restore.completed': {
          const e = followed.event;
          if (e.dataDirectory !== undefined) return { line: pointInTimeLines(e), exitCode: 0, outcome: 'restored', artifactId: e.artifactId };
          const kept = e.previousDatabaseKeptAs ? `; the previous database is kept as ${e.previousDatabaseKeptAs}` : '';
          const written = e.files ? `: ${e.files.files} files (${formatBytes(e.files.bytes)}), ${e.files.directories} directories, ${e.files.symlinks} symlinks` : '';
          return { line: `restored: ${e.artifactId} into ${e.database} in ${formatDuration(e.durationMs)}${written}${kept}`, exitCode: 0, outcome: 'restored', artifactId: e.artifactId };
        }
        case 'restore.failed':
          return { line: `restore failed: ${describeError(followed.event.error, scope)}`, exitCode: 1, outcome: 'failed', error: followed.event.error };
        case 'command.rejected':
          return { line: `rejected: ${describeError(followed.event.error, scope)}`, exitCode: 1, outcome: 'rejected', error: followed.event.error };
        default:
          return {};
      }
    },
  };
}
