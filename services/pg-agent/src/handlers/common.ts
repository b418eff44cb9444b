// Small pieces the pg-agent's handlers share.
import { parseCommandSubject, toErrorInfo, TidemarkError, type ErrorInfo } from '@tidemark/contracts';
import type { Target, TidemarkConfig } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import type { EventPublisher } from '@tidemark/runtime';
import type { PgCluster } from '@tidemark/pg';

/** The ports both handlers work through. */
export interface AgentDeps {
  readonly config: TidemarkConfig;
  readonly store: ArtifactStore;
  readonly clusterFor: (target: Target) => PgCluster;
  readonly publisher: EventPublisher;
  readonly keys: KeyRing;
  readonly agent: { readonly id: string; readonly version: string };
  readonly clock: () => Date;
}

/** Events carry error messages of at most 2000 characters. */
export function errorInfoOf(error: unknown): ErrorInfo {
  const info = toErrorInfo(error);
  return info.message.length > 1900 ? { ...info, message: `${info.message.slice(0, 1900)}…` } : info;
}

/** Redelivery delay after a retryable failure: 2 s doubling to 60 s. */
export const retryDelayMs = (attempt: number): number => Math.min(60_000, 2_000 * 2 ** Math.max(0, attempt - 1));

/** The target named by a `<verb>.requested.pg.<target>` subject. */
export function targetOfSubject(subject: string): string {
  const parsed = parseCommandSubject(subject);
  if ('error' in parsed) throw new TidemarkError('COMMAND_UNKNOWN_SUBJECT', parsed.error);
  return parsed.target;
}

/** The default request id, stable across redeliveries of one stream message. */
export const requestIdOf = (requestId: string | undefined, streamSequence: number): string => requestId ?? `js:${streamSequence}`;

/** UTC yyyymmddhhmmss, for database names. */
export const compactTimestamp = (at: Date): string => at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
