// What the logical (pg_dump) and the physical (pg_basebackup) backups share: a tool's output
// streamed through the pipeline into storage, then committed by its manifest. The tool's session
// says what the source was; this file owns progress, storage, the manifest and the clean-up.
import type { Readable } from 'node:stream';
import { TidemarkError, type ArtifactKind, type Manifest, type RequestBackup } from '@tidemark/contracts';
import type { effectiveTarget, Target } from '@tidemark/config';
import { defaultCompression, encodeStream, isTeardownError, settleFirstCause, type KeyRing } from '@tidemark/pipeline';
import { manifestOf, type AgentContext as Context } from '@tidemark/agent';
import type { AgentDeps } from '../agent-deps.js';

/** A running backup tool, as storeArtifact needs it. */
export interface ArtifactSource {
  /** The bytes to store; ends only after the tool finished cleanly. */
  readonly output: Readable;
  /** The manifest's `source`, once the tool has finished; rejects when the backup failed. */
  readonly facts: Promise<Record<string, unknown>>;
  /** Grows while the backup makes progress (bytes, facts queries): heartbeats follow it. */
  progress(): number;
  abort(reason: TidemarkError): void;
  /** Resolves (never rejects) once the tool is gone and its sessions are closed. */
  readonly finished: Promise<void>;
}

export interface ArtifactPlan {
  readonly artifactId: string;
  readonly requestId: string;
  readonly kind: ArtifactKind;
  /** What the decoded bytes are, e.g. "pg_dump-custom". */
  readonly format: string;
  readonly startedAt: Date;
  readonly key: KeyRing['current'];
  readonly settings: ReturnType<typeof effectiveTarget>;
  readonly message: RequestBackup;
}

export interface StoreDeps extends Pick<AgentDeps, 'store' | 'clock' | 'agent'> {
  /** How often progress is reported to the consumer while the tool runs (default 5 s). */
  readonly progressIntervalMs?: number;
}

/**
 * Streams the source's output through the pipeline into storage and commits the manifest last.
 * On any failure the source is aborted, and this returns only once the tool is gone.
 */
export async function storeArtifact(target: Target, plan: ArtifactPlan, source: ArtifactSource, deps: StoreDeps, ctx: Context): Promise<Manifest> {
  let lastReported = 0;
  const progress = setInterval(() => {
    const now = source.progress();
    // Only progress keeps the command alive: a tool that hangs stops it, and the runner's stall window aborts the job.
    if (now === lastReported) return;
    lastReported = now;
    ctx.progress(`${plan.kind} backup: ${now}`);
    ctx.logger.debug({ artifactId: plan.artifactId, progress: now }, 'backup in progress');
  }, deps.progressIntervalMs ?? 5_000);
  try {
    const encoded = encodeStream(source.output, {
      compression: plan.settings.compression ?? defaultCompression(),
      ...(plan.settings.compressionLevel !== undefined ? { compressionLevel: plan.settings.compressionLevel } : {}),
      ...(plan.key ? { key: plan.key } : {}),
    });
    // The first real failure (a stalled upload, a failed dump) stops the tool at once; the aborts
    // it causes in the other parts are not what gets reported.
    const [saved, summary, facts] = await settleFirstCause(
      [deps.store.saveData('pg', target.name, plan.artifactId, encoded.output as Readable), encoded.summary, source.facts, source.finished] as const,
      (first) => {
        if (first instanceof TidemarkError && !isTeardownError(first)) source.abort(first);
        // Otherwise tear the pipeline down (the tool dies once its output closes); the aborts
        // this causes are teardown errors, so they never outrank `first`.
        else encoded.output.destroy();
      },
    );
    const manifest = manifestOf(
      {
        engine: 'pg', target: target.name, artifactId: plan.artifactId, kind: plan.kind, format: plan.format, requestId: plan.requestId,
        startedAt: plan.startedAt, source: facts, summary, dataKey: saved.key, verify: plan.message.verify ?? plan.settings.verify, message: plan.message,
      },
      deps,
    );
    await deps.store.commit(manifest);
    return manifest;
  } catch (error) {
    source.abort(abortReason(error));
    // Return only once the tool is gone and its sessions are closed.
    await source.finished;
    throw error;
  } finally {
    clearInterval(progress);
  }
}

const abortReason = (error: unknown): TidemarkError => (error instanceof TidemarkError ? error : new TidemarkError('INTERNAL', (error as Error).message));
