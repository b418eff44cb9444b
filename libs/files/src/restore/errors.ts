import { TidemarkError } from '@tidemark/contracts';
import { firstCause } from '@tidemark/pipeline';
import type { RestoreSummary } from './api.js';

export type Refused = RestoreSummary['refused'][number];
export type Skipped = NonNullable<RestoreSummary['skipped']>[number];

const REFUSALS_NAMED = 5;

/** RESTORE_PATH_REFUSED, carrying the summary of what was restored and what was refused. */
export class RestoreRefusedError extends TidemarkError {
  readonly summary: RestoreSummary;

  constructor(summary: RestoreSummary, outcome: string) {
    const named = summary.refused.slice(0, REFUSALS_NAMED).map(({ path, reason }) => `${JSON.stringify(path)} (${reason})`);
    const more = summary.refused.length > REFUSALS_NAMED ? ` and ${summary.refused.length - REFUSALS_NAMED} more` : '';
    super('RESTORE_PATH_REFUSED', `the snapshot holds ${summary.refused.length} entries that were refused and not written: ${named.join(', ')}${more}; ${outcome}`);
    this.summary = summary;
  }
}

/** Anything a restore throws, as a TidemarkError: file system failures are RESTORE_FAILED (never INTERNAL). */
export function asRestoreError(error: unknown): TidemarkError {
  const cause = firstCause([error]);
  if (cause instanceof TidemarkError) return cause;
  const code = (cause as { code?: unknown }).code;
  const message = cause instanceof Error ? cause.message : String(cause);
  // Out of space or a busy device may pass; a permission or a missing path will not.
  const retryable = code === 'ENOSPC' || code === 'EBUSY' || code === 'EAGAIN' || code === 'EMFILE' || code === 'ENFILE';
  return new TidemarkError('RESTORE_FAILED', `writing the restore failed: ${message}`, { cause, retryable });
}
