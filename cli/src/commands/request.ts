// Publishing a command and (optionally) following it: shared by backup and restore.
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { headers as natsHeaders, type JetStreamClient, type NatsConnection } from 'nats';
import { CONTENT_TYPE_HEADER, MSGPACK, TidemarkError, encode, type ErrorInfo } from '@tidemark/contracts';
import { NO_RESPONDERS, natsFailure } from '../nats-errors.js';
import type { FollowedEvent, Follower, Outcome } from './follow.js';
import { startWatch, type WatchSpec } from './watch.js';
import { followProgress, progressDisplay, type ProgressOutput } from './progress.js';
import type { Engine, JobProgress } from '@tidemark/contracts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Where --wait shows progress (stderr); none in tests that do not look at it. */
  readonly progress?: ProgressOutput;
}

export interface CommandDeps {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly io: Io;
  readonly json: boolean;
  readonly timeoutMs: number;
  /** Tests pin the request id. */
  readonly newRequestId?: () => string;
}

export const newRequestId = (): string => randomUUID();

/** Who asked, for the audit history: "cli:<user>@<host>". */
export function requestedBy(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `cli:${user}@${hostname()}`.slice(0, 200);
}

/** Publishes a command through JetStream (msgpack, Nats-Msg-Id = requestId, so a retry is de-duplicated). */
export async function publishCommand(js: JetStreamClient, subject: string, command: { requestId?: string }): Promise<void> {
  const h = natsHeaders();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  try {
    await js.publish(subject, encode(command), { msgID: command.requestId, headers: h });
  } catch (error) {
    if ((error as { code?: unknown }).code === NO_RESPONDERS) {
      throw new TidemarkError('COMMAND_UNKNOWN_SUBJECT', `no stream stores ${subject}: start Tidemark's services (they create the streams), and check that this engine has an agent`, { cause: error });
    }
    throw natsFailure(error, subject, 'NATS JetStream');
  }
}

export interface RequestResult {
  readonly requestId: string;
  readonly subject: string;
  readonly outcome?: Outcome | 'timeout';
  readonly artifactId?: string;
  readonly error?: ErrorInfo;
  readonly events?: ReadonlyArray<{ type: FollowedEvent['type']; event: unknown }>;
}

/**
 * Publishes `command`; with `wait`, subscribes to `specs` first and follows the request.
 * Returns the exit code: 0 done, 1 failed or rejected, 2 timeout.
 */
export async function requestAndFollow(
  deps: CommandDeps,
  subject: string,
  command: { requestId: string },
  wait: { specs: readonly WatchSpec[]; follower: Follower; progress?: { action: JobProgress['action']; engine: Engine; target: string } } | undefined,
): Promise<number> {
  const { io, json } = deps;
  const { requestId } = command;
  if (!wait) {
    await publishCommand(deps.js, subject, command);
    if (json) io.out(JSON.stringify({ requestId, subject } satisfies RequestResult));
    else io.out(requestId);
    return 0;
  }

  const events: Array<{ type: FollowedEvent['type']; event: unknown }> = [];
  let artifactId: string | undefined;
  // A fast agent can answer before JetStream acknowledges the publish: its progress lines wait
  // until "requested:" is printed, so the output always reads in order.
  let heldLines: string[] | undefined = [];
  const display = !json && io.progress && wait.progress ? progressDisplay(io.progress) : undefined;
  const show = (line: string) => {
    if (heldLines) return void heldLines.push(line);
    display?.interrupt();
    io.out(line);
  };
  const watch = await startWatch(deps.nc, wait.specs, wait.follower, (step, followed) => {
    events.push({ type: followed.type, event: followed.event });
    if (step.artifactId) artifactId = step.artifactId;
    if (!json && step.line) show(step.line);
  }, deps.timeoutMs);
  const progress = display && wait.progress
    ? followProgress(deps.nc, wait.progress.action, wait.progress.engine, wait.progress.target, requestId, display)
    : undefined;
  try {
    await publishCommand(deps.js, subject, command);
  } catch (error) {
    watch.stop();
    progress?.unsubscribe();
    throw error;
  }
  display?.interrupt();
  if (!json) io.out(`requested: ${requestId} on ${subject}`);
  heldLines.forEach((line) => io.out(line));
  heldLines = undefined;

  const finished = await watch.finished;
  progress?.unsubscribe();
  display?.finish();
  if (finished === 'timeout') {
    const seconds = Math.round(deps.timeoutMs / 1000);
    if (json) io.out(JSON.stringify({ requestId, subject, outcome: 'timeout', ...(artifactId ? { artifactId } : {}), events } satisfies RequestResult));
    else io.err(`timed out after ${seconds}s waiting for ${requestId}; it may still complete: follow it with "tidemark list" or raise --timeout`);
    return 2;
  }
  const { step } = finished;
  if (json) {
    io.out(JSON.stringify({
      requestId, subject, outcome: step.outcome, ...(artifactId ? { artifactId } : {}), ...(step.error ? { error: step.error } : {}), events,
    } satisfies RequestResult));
  }
  return step.exitCode ?? 1;
}
