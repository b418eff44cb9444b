// When one stage of a pipeline fails, tearing the rest down makes every other stage fail too:
// an aborted iterator, a prematurely closed stream, a killed child's broken pipe. Those later
// errors say nothing about what went wrong, and (not being TidemarkErrors) would be reported as
// a permanent INTERNAL. This is the one rule for picking the error that started it all.
import { TidemarkError } from '@tidemark/contracts';

/** Node's codes for a stream or request torn down by someone else, not failed on its own. */
const TEARDOWN_CODES = new Set(['ABORT_ERR', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'EPIPE']);

/**
 * True for an error a teardown causes (an abort, a premature close, a broken pipe) rather than a
 * failure of its own. A TidemarkError is one only when all it says is such an error (its cause):
 * "reading pg_dump output failed: The operation was aborted".
 */
export function isTeardownError(error: unknown): boolean {
  if (error instanceof TidemarkError) return error.cause !== undefined && isTeardownError(error.cause);
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return error.name === 'AbortError' || (typeof code === 'string' && TEARDOWN_CODES.has(code));
}

/**
 * The error that started a teardown, from the errors of its parts in the order they happened:
 * the first one that is not a consequence of the teardown. A raw error that some TidemarkError
 * wraps is reported as that TidemarkError (the same failure, classified, with its retryable flag).
 * When only teardown errors are left, an abort's reason (AbortSignal.reason travels as `cause`)
 * is preferred to the abort itself. Returns undefined only for an empty list.
 */
export function firstCause(errors: readonly unknown[]): unknown {
  const real = errors.find((error) => !isTeardownError(error));
  if (real !== undefined) return classified(real, errors);
  for (const error of errors) {
    const reason = (error as { cause?: unknown }).cause;
    if (reason !== undefined && !isTeardownError(reason)) return classified(reason, errors);
  }
  return errors[0];
}

function classified(error: unknown, errors: readonly unknown[]): unknown {
  if (error instanceof TidemarkError) return error;
  return errors.find((other) => other instanceof TidemarkError && causeChainIncludes(other, error)) ?? error;
}

function causeChainIncludes(error: unknown, target: unknown): boolean {
  for (let current: unknown = error, depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    if (current === target) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Like Promise.all over the parts of one pipeline, but every part is awaited and the failure
 * reported is `firstCause` of the rejections in the order they came. `onFailure` runs once, at
 * the first rejection, to tear the remaining parts down (kill a tool, destroy a stream), so that
 * waiting for them all cannot hang.
 */
export async function settleFirstCause<T extends readonly unknown[]>(
  parts: { readonly [K in keyof T]: Promise<T[K]> },
  onFailure?: (error: unknown) => void,
): Promise<T> {
  const rejections: unknown[] = [];
  const settled = await Promise.all(
    (parts as readonly Promise<unknown>[]).map((part) =>
      part.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => {
          rejections.push(error);
          if (rejections.length === 1) onFailure?.(error);
          return { ok: false as const };
        },
      ),
    ),
  );
  if (rejections.length > 0) throw firstCause(rejections);
  return settled.map((part) => (part.ok ? part.value : undefined)) as unknown as T;
}
