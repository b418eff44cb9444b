// What the engine agents' handlers share: the command's target and request id, error info for
// events, the failure reports worded with the consumer runner's final-or-retry decision, and the
// events every agent publishes the same way
// (backup.failed, restore.failed, artifact.stored + backup.completed). Only the engine-specific
// work stays in the agents.
import {
  MANIFEST_VERSION, ArtifactStored, BackupCompleted, BackupFailed, RestoreCompleted, RestoreFailed, RestoreStarted, SCHEMA_VERSION, messageIds, parseCommandSubject, subjects, toErrorInfo, TidemarkError,
  type ArtifactKind, type Engine, type ErrorInfo, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import type { TidemarkConfig } from '@tidemark/config';
import { artifactKeys, type ArtifactStore } from '@tidemark/storage';
import type { EncodeSummary, KeyRing } from '@tidemark/pipeline';
import { failed, isLastAttempt, reject, retriesMayHelp, type EventPublisher, type HandlerContext, type Logger, type Outcome } from '@tidemark/runtime';

/** The ports every agent's handlers work through; each agent adds its engine's port. */
export interface AgentBaseDeps {
  readonly config: TidemarkConfig;
  readonly store: ArtifactStore;
  readonly publisher: EventPublisher;
  readonly keys: KeyRing;
  readonly agent: { readonly id: string; readonly version: string };
  readonly clock: () => Date;
}

/** The part of the handler context an agent's handlers use. */
export type AgentContext = Pick<HandlerContext, 'subject' | 'attempt' | 'maxDeliver' | 'isLastAttempt' | 'streamSequence' | 'storedAt' | 'progress' | 'signal' | 'logger'>;

type Publishing = Pick<AgentBaseDeps, 'publisher' | 'clock'>;
type Attempt = Pick<AgentContext, 'attempt' | 'maxDeliver'>;

/** Events carry error messages of at most 2000 characters. */
const MAX_EVENT_MESSAGE = 1900;

const clipped = (message: string, room: number): string => (message.length > room ? `${message.slice(0, Math.max(0, room - 1))}…` : message);

export function errorInfoOf(error: unknown): ErrorInfo {
  const info = toErrorInfo(error);
  return { ...info, message: clipped(info.message, MAX_EVENT_MESSAGE) };
}

/** The target named by a `<verb>.requested.<engine>.<target>` subject. */
export function targetOfSubject(subject: string): string {
  const parsed = parseCommandSubject(subject);
  if ('error' in parsed) throw new TidemarkError('COMMAND_UNKNOWN_SUBJECT', parsed.error);
  return parsed.target;
}

/**
 * A command for a target that is not configured: a typo in the command, not a failed backup or
 * restore, so it is rejected (command.rejected, a warning) instead of failing (a critical page).
 * The message names the configured targets so the sender sees the right spelling.
 */
export function unknownTarget(config: Pick<TidemarkConfig, 'targets'>, engine: Engine, targetName: string): Outcome {
  const configured = config.targets.filter((t) => t.engine === engine).map((t) => t.name);
  const known = configured.length > 0 ? `the configured ${engine} targets are ${configured.join(', ')}` : `no ${engine} target is configured`;
  return reject(new TidemarkError('TARGET_UNKNOWN', `no ${engine} target named "${targetName}" is configured (${known}); check the name, or add the target to tidemark.yaml`));
}

/** The default request id, stable across redeliveries of one stream message. */
export const requestIdOf = (requestId: string | undefined, streamSequence: number): string => requestId ?? `js:${streamSequence}`;

/** UTC yyyymmddhhmmss, for database and collection names. */
export const compactTimestamp = (at: Date): string => at.toISOString().replace(/[-:T]/g, '').slice(0, 14);

/** The fields every event of one command starts with. */
export const eventScope = (engine: Engine, target: string, requestId: string) => ({ schemaVersion: SCHEMA_VERSION, engine, target, requestId });

/** A failure as events report it; final when it cannot succeed or this was the last delivery. */
export interface Failure {
  readonly info: ErrorInfo;
  readonly final: boolean;
}

/** What a person does once a command has given up: the CLI command that asks again. */
export function requestAgainHint(action: 'backup' | 'restore', engine: Engine, target: string): string {
  return action === 'backup'
    ? `Fix the cause and request the backup again (\`tidemark backup ${engine} ${target}\`).`
    : `Fix the cause and request the restore again (\`tidemark restore ${engine} ${target}\` with the same options).`;
}

/**
 * The error as the event reports it, with the sentence only a failure report can write, because
 * only the consumer runner's decision (`attempt`, `maxDeliver` of the FailureDecision it hands the
 * report, judged by the runtime's one policy) says whether another attempt follows: "…; attempt 2 of 5, it will be retried", or
 * after the last one "gave up after 5 attempts: … <nextStep>". Errors themselves never say
 * whether they will be retried. A permanent error is reported as it is: retrying cannot help
 * and its message already says what to change.
 */
export function failureOf(error: unknown, ctx: Attempt, nextStep: string): Failure {
  const info = toErrorInfo(error);
  if (!retriesMayHelp(error)) return { info: { ...info, message: clipped(info.message, MAX_EVENT_MESSAGE) }, final: true };
  if (!isLastAttempt(ctx.attempt, ctx.maxDeliver)) {
    const suffix = `; attempt ${ctx.attempt}${ctx.maxDeliver > 0 ? ` of ${ctx.maxDeliver}` : ''}, it will be retried`;
    return { info: { ...info, message: `${clipped(info.message, MAX_EVENT_MESSAGE - suffix.length)}${suffix}` }, final: false };
  }
  const prefix = `gave up after ${ctx.attempt} attempt${ctx.attempt === 1 ? '' : 's'}: `;
  const suffix = `. ${nextStep}`;
  const cause = clipped(info.message.replace(/[.\s]+$/, ''), MAX_EVENT_MESSAGE - prefix.length - suffix.length);
  return { info: { ...info, message: `${prefix}${cause}${suffix}` }, final: true };
}

export interface BackupFailure {
  readonly engine: Engine;
  readonly target: string;
  readonly requestId: string;
  readonly kind: ArtifactKind;
  /** Absent when the command failed before any artifact was known. */
  readonly artifactId?: string | undefined;
}

/** Publishes backup.failed for this delivery (msg id `failed:<artifact or request id>:<attempt>`). */
export async function publishBackupFailed(error: unknown, failure: BackupFailure, deps: Publishing, ctx: Attempt): Promise<Failure> {
  const { engine, target, requestId, kind, artifactId } = failure;
  const outcome = failureOf(error, ctx, requestAgainHint('backup', engine, target));
  await deps.publisher.publish(
    subjects.backupFailed(engine, target),
    BackupFailed,
    {
      ...eventScope(engine, target, requestId),
      occurredAt: deps.clock().toISOString(),
      kind,
      ...(artifactId ? { artifactId } : {}),
      error: outcome.info,
      attempt: ctx.attempt,
      final: outcome.final,
    },
    messageIds.backupFailed({ artifactId, requestId }, ctx.attempt),
  );
  return outcome;
}

/** The backup failed: the runner decides final or retry, then backup.failed reports that decision. */
export function backupFailed(error: unknown, failure: BackupFailure, deps: Publishing, log: Logger): Outcome {
  return failed(error, async (decision, cause) => {
    const reported = await publishBackupFailed(cause, failure, deps, decision);
    log.warn({ err: reported.info, final: reported.final }, 'backup failed');
  });
}

export interface RestoreFailure extends RestoreRun {
  readonly artifactId: string | undefined;
  /** The database or collection restored into, once known. */
  readonly database: string | undefined;
  /** What the log lines name besides the error. */
  readonly logFields: Record<string, unknown>;
}

/** The restore failed: once the runner has decided it is final, restore.failed is published (once per request). */
export function restoreFailed(error: unknown, failure: RestoreFailure, deps: Publishing, log: Logger): Outcome {
  return failed(error, (decision, cause) => publishRestoreFailed(cause, failure, deps, decision, log));
}

async function publishRestoreFailed(error: unknown, failure: RestoreFailure, deps: Publishing, decision: Attempt, log: Logger): Promise<void> {
  const { engine, target, requestId, artifactId, database } = failure;
  const outcome = failureOf(error, decision, requestAgainHint('restore', engine, target));
  if (outcome.final) {
    await deps.publisher.publish(
      subjects.restoreFailed(engine, target),
      RestoreFailed,
      { ...eventScope(engine, target, requestId), occurredAt: deps.clock().toISOString(), ...(artifactId ? { artifactId } : {}), ...(database ? { database } : {}), error: outcome.info },
      messageIds.restoreFailed(requestId),
    );
  }
  log.warn({ err: outcome.info, final: outcome.final, ...failure.logFields }, 'restore failed');
}

/** What an agent knows once an artifact's bytes are stored: everything its manifest says. */
export interface StoredArtifact {
  readonly engine: Engine;
  readonly target: string;
  readonly artifactId: string;
  readonly kind: ArtifactKind;
  readonly format: string;
  readonly requestId: string;
  readonly startedAt: Date;
  /** Engine-specific facts, already validated against their schema. */
  readonly source: object;
  readonly summary: EncodeSummary;
  readonly dataKey: string;
  readonly verify: boolean;
  readonly parentId?: string | undefined;
  readonly message: Pick<RequestBackup, 'groupId' | 'reason'>;
}

/** The manifest that commits a stored artifact (finished now, by this agent). */
export function manifestOf(stored: StoredArtifact, deps: Pick<AgentBaseDeps, 'agent' | 'clock'>): Manifest {
  return {
    manifestVersion: MANIFEST_VERSION,
    id: stored.artifactId,
    engine: stored.engine,
    target: stored.target,
    kind: stored.kind,
    format: stored.format,
    requestId: stored.requestId,
    createdAt: stored.startedAt.toISOString(),
    finishedAt: deps.clock().toISOString(),
    agent: { id: deps.agent.id, version: deps.agent.version },
    source: stored.source as Record<string, unknown>,
    pipeline: stored.summary.pipeline,
    data: { key: stored.dataKey, storedBytes: stored.summary.storedBytes, rawBytes: stored.summary.rawBytes, sha256: stored.summary.sha256 },
    verify: stored.verify,
    ...(stored.parentId ? { parentId: stored.parentId } : {}),
    ...(stored.message.groupId ? { groupId: stored.message.groupId } : {}),
    ...(stored.message.reason ? { reason: stored.message.reason } : {}),
  };
}

/** What backup.completed adds for a files snapshot: the paths it could not store as they were. */
export type CompletedProblems = Pick<BackupCompleted, 'problemsCount' | 'problems'>;

/** artifact.stored then backup.completed; msg ids make a repeat a no-op for the stream. */
export async function announceArtifact(engine: Engine, manifest: Manifest, deps: Publishing, problems: CompletedProblems = {}): Promise<void> {
  const scope = eventScope(engine, manifest.target, manifest.requestId);
  await deps.publisher.publish(
    subjects.artifactStored(engine, manifest.target),
    ArtifactStored,
    {
      ...scope,
      occurredAt: manifest.finishedAt,
      kind: manifest.kind,
      artifactId: manifest.id,
      manifestKey: artifactKeys(engine, manifest.target, manifest.id).manifest,
      storedBytes: manifest.data.storedBytes,
      sha256: manifest.data.sha256,
      verify: manifest.verify,
    },
    messageIds.artifactStored(manifest.id),
  );
  await deps.publisher.publish(
    subjects.backupCompleted(engine, manifest.target),
    BackupCompleted,
    {
      ...scope,
      occurredAt: deps.clock().toISOString(),
      kind: manifest.kind,
      artifactId: manifest.id,
      storedBytes: manifest.data.storedBytes,
      durationMs: Math.max(0, Date.parse(manifest.finishedAt) - Date.parse(manifest.createdAt)),
      ...problems,
    },
    messageIds.backupCompleted(manifest.id),
  );
}

/** The command a restore answers. */
export interface RestoreRun {
  readonly engine: Engine;
  readonly target: string;
  readonly requestId: string;
}

/** restore.started for this delivery (msg id `restore-started:<request id>:<attempt>`). */
export async function publishRestoreStarted(
  run: RestoreRun,
  restore: { readonly artifactId: string; readonly database: string; readonly startedAt: Date },
  deps: Publishing & Pick<AgentBaseDeps, 'agent'>,
  ctx: Pick<AgentContext, 'attempt'>,
): Promise<void> {
  await deps.publisher.publish(
    subjects.restoreStarted(run.engine, run.target),
    RestoreStarted,
    { ...eventScope(run.engine, run.target, run.requestId), occurredAt: restore.startedAt.toISOString(), artifactId: restore.artifactId, database: restore.database, agentId: deps.agent.id },
    messageIds.restoreStarted(run.requestId, ctx.attempt),
  );
}

/** restore.completed, once per request; `previousDatabaseKeptAs` says where the old data went. */
export async function publishRestoreCompleted(
  run: RestoreRun,
  restore: {
    readonly artifactId: string;
    readonly database: string;
    readonly startedAt: Date;
    readonly previousDatabaseKeptAs?: string | undefined;
    /** files: what was written. */
    readonly files?: RestoreCompleted['files'];
  },
  deps: Publishing,
): Promise<void> {
  await deps.publisher.publish(
    subjects.restoreCompleted(run.engine, run.target),
    RestoreCompleted,
    {
      ...eventScope(run.engine, run.target, run.requestId),
      occurredAt: deps.clock().toISOString(),
      artifactId: restore.artifactId,
      database: restore.database,
      durationMs: Math.max(0, deps.clock().getTime() - restore.startedAt.getTime()),
      ...(restore.previousDatabaseKeptAs ? { previousDatabaseKeptAs: restore.previousDatabaseKeptAs } : {}),
      ...(restore.files ? { files: restore.files } : {}),
    },
    messageIds.restoreCompleted(run.requestId),
  );
}

/**
 * The artifact to restore: the named one, else the newest that passed verification, else the
 * newest. `among` narrows the candidates (and names them in the error when there is none).
 */
export async function pickArtifactOf(
  store: ArtifactStore,
  engine: Engine,
  target: string,
  artifactId: string | undefined,
  among?: { readonly keep: (manifest: Manifest) => boolean; readonly what: string },
): Promise<Manifest> {
  if (artifactId !== undefined) {
    const named = await store.readManifest(engine, target, artifactId);
    if (!named) throw new TidemarkError('ARTIFACT_NOT_FOUND', `artifact ${artifactId} of ${engine} target "${target}" is not committed; list artifacts with the catalog`);
    return named;
  }
  const listed = await store.listManifests({ engine, target });
  const manifests = among ? listed.filter(among.keep) : listed;
  for (const manifest of manifests) {
    const verification = await store.readVerification(manifest);
    if (verification?.status === 'passed') return manifest;
  }
  const newest = manifests[0];
  if (!newest) throw new TidemarkError('ARTIFACT_NOT_FOUND', `${among?.what ?? `${engine} target "${target}"`} has no committed artifact to restore; take a backup first`);
  return newest;
}
