// Core-NATS subscriptions: to a request's event subjects (backup/restore --wait), and to any
// subject for `tidemark watch`. Events are stored by JetStream, but a core subscription sees them
// as they are published, and needs no consumer to clean up after.
import type { NatsConnection, Subscription } from 'nats';
import {
  ArtifactStored, BackupCompleted, BackupFailed, BackupStarted, CommandRejected, RestoreCompleted, RestoreFailed,
  RestoreStarted, STREAMS, VerifyFailed, VerifyPassed, decode, isAlertSubject, parseMessage, subjects,
  type Engine, type ErrorInfo, type HeaderReader, type Schema,
} from '@tidemark/contracts';
import { payloadPreview } from '@tidemark/runtime';
import type { FollowedEvent, Follower, Step } from './follow.js';
import type { Io } from './request.js';

export interface WatchSpec {
  readonly type: FollowedEvent['type'];
  readonly subject: string;
  readonly schema: Schema<unknown>;
}

const spec = (type: FollowedEvent['type'], subject: string, schema: Schema<unknown>): WatchSpec => ({ type, subject, schema });

export function backupWatchSpecs(engine: Engine, target: string): WatchSpec[] {
  return [
    spec('backup.started', subjects.backupStarted(engine, target), BackupStarted),
    spec('backup.completed', subjects.backupCompleted(engine, target), BackupCompleted),
    spec('backup.failed', subjects.backupFailed(engine, target), BackupFailed),
    spec('artifact.stored', subjects.artifactStored(engine, target), ArtifactStored),
    spec('verify.passed', subjects.verifyPassed(engine, target), VerifyPassed),
    spec('verify.failed', subjects.verifyFailed(engine, target), VerifyFailed),
    spec('command.rejected', subjects.commandRejected(), CommandRejected),
  ];
}

export function restoreWatchSpecs(engine: Engine, target: string): WatchSpec[] {
  return [
    spec('restore.started', subjects.restoreStarted(engine, target), RestoreStarted),
    spec('restore.completed', subjects.restoreCompleted(engine, target), RestoreCompleted),
    spec('restore.failed', subjects.restoreFailed(engine, target), RestoreFailed),
    spec('command.rejected', subjects.commandRejected(), CommandRejected),
  ];
}

export interface Watch {
  /** Resolves with the final step, or 'timeout'. */
  readonly finished: Promise<{ step: Step; followed: FollowedEvent } | 'timeout'>;
  stop(): void;
}

/**
 * Subscribes (and flushes, so the server knows the interest before the command is published),
 * then feeds matching events to `follower` until it returns an exit code or `timeoutMs` passes.
 */
export async function startWatch(
  nc: NatsConnection,
  specs: readonly WatchSpec[],
  follower: Follower,
  onStep: (step: Step, followed: FollowedEvent) => void,
  timeoutMs: number,
): Promise<Watch> {
  let settle: (value: { step: Step; followed: FollowedEvent } | 'timeout') => void = () => {};
  const finished = new Promise<{ step: Step; followed: FollowedEvent } | 'timeout'>((resolve) => (settle = resolve));
  let done = false;
  const subscriptions: Subscription[] = [];
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    done = true;
    if (timer) clearTimeout(timer);
    for (const s of subscriptions) s.unsubscribe();
  };

  for (const { type, subject, schema } of specs) {
    subscriptions.push(
      nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error || done) return;
          let followed: FollowedEvent;
          try {
            followed = { type, event: parseMessage(schema, decode(msg.data, msg.headers)) } as FollowedEvent;
          } catch {
            return; // Not a well-formed event; someone else's problem (the alerter sees it).
          }
          if (!follower.matches(followed)) return;
          const step = follower.step(followed);
          onStep(step, followed);
          if (step.exitCode !== undefined) {
            stop();
            settle({ step, followed });
          }
        },
      }),
    );
  }
  await nc.flush();
  timer = setTimeout(() => {
    stop();
    settle('timeout');
  }, timeoutMs);
  return { finished, stop };
}

// ---------------------------------------------------------------- tidemark watch [subject]

/** Every subject Tidemark's streams store: commands, events, alerts and the WAL archive. */
export const DEFAULT_WATCH_SUBJECTS: readonly string[] = STREAMS.flatMap((stream) => stream.subjects);

const MAX_FIELD_CHARS = 160;

const clip = (text: string): string => (text.length <= MAX_FIELD_CHARS ? text : `${text.slice(0, MAX_FIELD_CHARS - 1)}…`);

const isErrorInfo = (value: unknown): value is ErrorInfo =>
  typeof value === 'object' && value !== null && typeof (value as ErrorInfo).code === 'string' && typeof (value as ErrorInfo).message === 'string';

function fieldText(value: unknown): string {
  if (isErrorInfo(value)) return clip(`${value.code}: ${value.message}`);
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? clip(value) : clip(JSON.stringify(value));
  return clip(JSON.stringify(value) ?? String(value));
}

/**
 * One readable line for an event: its time, its subject, then what it says. An alert is its
 * severity and summary; any other event is its fields as key=value (errors as "CODE: message"),
 * so events added later print without a change here.
 */
export function formatWatchedEvent(subject: string, event: unknown, receivedAt: Date): string {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return `${receivedAt.toISOString()} ${subject}  ${fieldText(event)}`;
  const fields = event as Record<string, unknown>;
  const at = typeof fields['occurredAt'] === 'string' ? fields['occurredAt'] : receivedAt.toISOString();
  if (isAlertSubject(subject) && typeof fields['summary'] === 'string') {
    return `${at} ${subject}  [${String(fields['severity'] ?? '?')}] ${fields['summary']}`;
  }
  const parts = Object.entries(fields)
    .filter(([key, value]) => key !== 'schemaVersion' && key !== 'occurredAt' && value !== undefined)
    .map(([key, value]) => `${key}=${fieldText(value)}`);
  return `${at} ${subject}  ${parts.join(' ')}`;
}

export interface WatchCommandDeps {
  readonly nc: NatsConnection;
  readonly io: Io;
  readonly json: boolean;
  /** Stop after this long (no limit when undefined). */
  readonly timeoutMs: number | undefined;
  /** Stop after this many events. */
  readonly count?: number | undefined;
  /** Ctrl-C. */
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

/**
 * `tidemark watch [subject]`: prints every message on `subject` (default: every Tidemark stream
 * subject) as it is published, decoded from JSON or msgpack, one line each; with --json one JSON
 * document per line ({"subject", "event"}). Runs until Ctrl-C, --timeout or --count.
 */
export async function runWatch(subject: string | undefined, deps: WatchCommandDeps): Promise<number> {
  const now = deps.now ?? (() => new Date());
  const filters = subject === undefined ? DEFAULT_WATCH_SUBJECTS : [subject];
  let seen = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const print = (msgSubject: string, data: Uint8Array, headers: HeaderReader | undefined) => {
    let event: unknown;
    try {
      event = decode(data, headers);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (deps.json) deps.io.out(JSON.stringify({ subject: msgSubject, undecodable: reason, sizeBytes: data.length, payloadPreview: payloadPreview(data) }));
      else deps.io.out(`${now().toISOString()} ${msgSubject}  (${data.length} bytes that cannot be decoded: ${reason}; first bytes: ${payloadPreview(data, 80)})`);
      return;
    }
    deps.io.out(deps.json ? JSON.stringify({ subject: msgSubject, event }) : formatWatchedEvent(msgSubject, event, now()));
  };
  const subscriptions = filters.map((filter) =>
    deps.nc.subscribe(filter, {
      callback: (error, msg) => {
        if (error || (deps.count !== undefined && seen >= deps.count)) return;
        // JetStream's own traffic and request inboxes are NATS plumbing, not Tidemark events.
        if (msg.subject.startsWith('$') || msg.subject.startsWith('_INBOX.')) return;
        seen++;
        print(msg.subject, msg.data, msg.headers);
        if (deps.count !== undefined && seen >= deps.count) finish();
      },
    }),
  );
  await deps.nc.flush();
  if (!deps.json) deps.io.err(`watching ${filters.join(', ')} (Ctrl-C to stop)`);
  const timer = deps.timeoutMs !== undefined ? setTimeout(finish, deps.timeoutMs) : undefined;
  const onAbort = () => finish();
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  await finished;
  if (timer) clearTimeout(timer);
  deps.signal?.removeEventListener('abort', onAbort);
  for (const s of subscriptions) s.unsubscribe();
  return 0;
}
