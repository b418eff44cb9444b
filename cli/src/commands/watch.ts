// Core-NATS subscriptions to a request's event subjects. Events are stored by JetStream, but a
// core subscription sees them as they are published, and needs no consumer to clean up after.
import type { NatsConnection, Subscription } from 'nats';
import {
  ArtifactStored, BackupCompleted, BackupFailed, BackupStarted, CommandRejected, RestoreCompleted, RestoreFailed,
  RestoreStarted, VerifyFailed, VerifyPassed, decode, parseMessage, subjects, type Engine, type Schema,
} from '@tidemark/contracts';
import type { FollowedEvent, Follower, Step } from './follow.js';

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
