// Small pieces the qdrant-agent's handlers share.
import type { Readable } from 'node:stream';
import {
  parseCommandSubject, QdrantSourceFacts, SchemaError, toErrorInfo, TidemarkError, type ErrorInfo, type Manifest,
} from '@tidemark/contracts';
import type { Target, TidemarkConfig } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { decodeStream, type KeyRing } from '@tidemark/pipeline';
import type { EventPublisher, HandlerContext } from '@tidemark/runtime';
import type { QdrantPort } from '@tidemark/qdrant';

/** The ports both handlers work through. */
export interface AgentDeps {
  readonly config: TidemarkConfig;
  readonly store: ArtifactStore;
  /** The (guarded) Qdrant port of a target; one per target, shared by backups and restores. */
  readonly portFor: (target: Target) => QdrantPort;
  readonly publisher: EventPublisher;
  readonly keys: KeyRing;
  readonly agent: { readonly id: string; readonly version: string };
  readonly clock: () => Date;
  /** How often the handlers tell the consumer they are still working (default 5 s). */
  readonly progressIntervalMs?: number;
}

export type Context = Pick<HandlerContext, 'subject' | 'attempt' | 'maxDeliver' | 'streamSequence' | 'storedAt' | 'working' | 'signal' | 'logger'>;

/** Events carry error messages of at most 2000 characters. */
export function errorInfoOf(error: unknown): ErrorInfo {
  const info = toErrorInfo(error);
  return info.message.length > 1900 ? { ...info, message: `${info.message.slice(0, 1900)}…` } : info;
}

/** Redelivery delay after a retryable failure: 2 s doubling to 60 s. */
export const retryDelayMs = (attempt: number): number => Math.min(60_000, 2_000 * 2 ** Math.max(0, attempt - 1));

/** The target named by a `<verb>.requested.qdrant.<target>` subject. */
export function targetOfSubject(subject: string): string {
  const parsed = parseCommandSubject(subject);
  if ('error' in parsed) throw new TidemarkError('COMMAND_UNKNOWN_SUBJECT', parsed.error);
  return parsed.target;
}

/** The default request id, stable across redeliveries of one stream message. */
export const requestIdOf = (requestId: string | undefined, streamSequence: number): string => requestId ?? `js:${streamSequence}`;

/** UTC yyyymmddhhmmss, for collection names. */
export const compactTimestamp = (at: Date): string => at.toISOString().replace(/[-:T]/g, '').slice(0, 14);

/** A manifest's `source` read as QdrantSourceFacts; anything else is an INTEGRITY_FORMAT error. */
export function qdrantFactsOf(manifest: Pick<Manifest, 'id' | 'source'>): QdrantSourceFacts {
  try {
    return QdrantSourceFacts.parse(manifest.source, 'source');
  } catch (error) {
    if (error instanceof SchemaError) {
      throw new TidemarkError('INTEGRITY_FORMAT', `manifest of artifact ${manifest.id} has no valid qdrant facts (${error.message}); it was not written by the qdrant agent`);
    }
    throw error;
  }
}

/** The decoded (decrypted, decompressed, sha256-checked) bytes of a committed artifact. */
export async function openDecoded(store: ArtifactStore, keys: KeyRing, manifest: Manifest): Promise<Readable> {
  const stored = await store.openData(manifest);
  const decoded = decodeStream(stored, { pipeline: manifest.pipeline, sha256: manifest.data.sha256, storedBytes: manifest.data.storedBytes }, keys);
  decoded.once('close', () => stored.destroy());
  return decoded;
}

/** Calls `working()` every `everyMs` while `work` runs. */
export async function whileWorking<T>(ctx: Pick<Context, 'working'>, everyMs: number, work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => ctx.working(), everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Like Promise.all, but every promise is observed, so a later rejection is never unhandled. */
export async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  for (const p of promises) (p as Promise<unknown>).catch(() => undefined);
  return (await Promise.all(promises)) as unknown as T;
}
