import { TidemarkError } from '@tidemark/contracts';

export const notFound = (key: string, cause?: unknown): TidemarkError =>
  new TidemarkError('STORAGE_NOT_FOUND', `storage object ${JSON.stringify(key)} does not exist`, { cause });

/** Wraps a failure of the store itself (disk, network, server). Retryable unless told otherwise. */
export const unavailable = (what: string, cause: unknown, retryable = true): TidemarkError =>
  new TidemarkError('STORAGE_UNAVAILABLE', `${what} failed: ${describeCause(cause)}; check the storage backend and retry`, { cause, retryable });

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}

export const invalidKey = (key: string): TidemarkError =>
  new TidemarkError('INTERNAL', `invalid storage key ${JSON.stringify(key)}: keys are relative '/'-separated paths without "." or ".." segments`);

/** Keys are relative '/'-separated paths; no empty, "." or ".." segments, no leading '/'. */
export function checkKey(key: string): void {
  if (key.length === 0 || key.length > 1024 || key.includes('\\') || key.includes('\0')) throw invalidKey(key);
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw invalidKey(key);
  }
}
