// Maps whatever a Qdrant call throws to a TidemarkError: unreachable, timed out, overloaded or
// 5xx → SOURCE_UNAVAILABLE (retryable); 401/403 → SOURCE_AUTH_FAILED; 404 → TARGET_UNKNOWN;
// any other 4xx → INTERNAL (non-retryable: our request or the collection is wrong, retrying
// cannot help). Messages never carry the API key: only the operation and Qdrant's own status text.
import { TidemarkError } from '@tidemark/contracts';

const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);

const statusOf = (error: unknown): number | undefined => {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = (error as { status?: unknown }).status;
  return typeof status === 'number' ? status : undefined;
};

/** Qdrant's error envelope: `{ status: { error: "..." } }`. */
const detailOf = (error: unknown): string => {
  const data = typeof error === 'object' && error !== null ? (error as { data?: unknown }).data : undefined;
  const fromEnvelope = typeof data === 'object' && data !== null ? (data as { status?: { error?: unknown } }).status?.error : undefined;
  if (typeof fromEnvelope === 'string') return fromEnvelope;
  return error instanceof Error ? error.message : String(error);
};

export function mapQdrantError(error: unknown, operation: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const status = statusOf(error);
  const detail = detailOf(error).slice(0, 300);
  if (status === undefined) {
    // fetch failures (connection refused, reset, DNS), client timeouts and aborted streams.
    return new TidemarkError('SOURCE_UNAVAILABLE', `qdrant ${operation} failed: ${detail}; check that qdrant is reachable`, { cause: error });
  }
  if (RETRYABLE_STATUS.has(status) || status >= 500) {
    return new TidemarkError('SOURCE_UNAVAILABLE', `qdrant ${operation} failed with ${status}: ${detail}`, { cause: error });
  }
  if (status === 401 || status === 403) {
    return new TidemarkError('SOURCE_AUTH_FAILED', `qdrant refused ${operation} (${status}); check the target's qdrant.apiKeyEnv`, { cause: error });
  }
  if (status === 404) {
    return new TidemarkError('TARGET_UNKNOWN', `qdrant ${operation}: not found (${detail}); check the collection name`, { cause: error });
  }
  // Qdrant answered and refused (400, 409, 422…): what it says is for a person to read.
  return new TidemarkError('QUERY_FAILED', `qdrant rejected ${operation} (${status}): ${detail}`, { cause: error });
}
