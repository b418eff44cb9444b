// The one error registry. Codes are stable and never reused: operators grep for them, alert
// rules match on them, and messages carry them across services.

export const ERROR_CODES = {
  // input
  COMMAND_INVALID: { retryable: false, summary: 'the command does not match its schema' },
  COMMAND_UNDECODABLE: { retryable: false, summary: 'the payload is neither JSON nor msgpack' },
  COMMAND_TOO_LARGE: { retryable: false, summary: 'the command exceeds the size limit' },
  COMMAND_UNKNOWN_VERSION: { retryable: false, summary: 'the schemaVersion is not supported' },
  COMMAND_UNKNOWN_SUBJECT: { retryable: false, summary: 'the subject is not a known command' },
  TARGET_UNKNOWN: { retryable: false, summary: 'no target of that name is configured' },
  CONFIG_INVALID: { retryable: false, summary: 'the configuration is invalid' },
  // sources and sandboxes
  SOURCE_UNAVAILABLE: { retryable: true, summary: 'the datastore could not be reached' },
  SOURCE_AUTH_FAILED: { retryable: false, summary: 'the datastore refused the credentials' },
  DUMP_FAILED: { retryable: true, summary: 'the dump tool failed' },
  QUERY_FAILED: { retryable: false, summary: 'the datastore answered a query with an error (its SQLSTATE is in the message)' },
  SOURCE_UNREADABLE: { retryable: false, summary: 'files of the source could not be read and the target is strict' },
  SANDBOX_UNAVAILABLE: { retryable: true, summary: 'the verification sandbox could not be reached' },
  // storage
  STORAGE_UNAVAILABLE: { retryable: true, summary: 'the object store could not be reached' },
  STORAGE_NOT_FOUND: { retryable: false, summary: 'the object does not exist' },
  ARTIFACT_NOT_FOUND: { retryable: false, summary: 'no committed artifact matches' },
  // integrity
  INTEGRITY_CHECKSUM_MISMATCH: { retryable: false, summary: 'the stored bytes do not match the recorded sha256' },
  INTEGRITY_AUTH_FAILED: { retryable: false, summary: 'decryption failed: wrong key or modified data' },
  INTEGRITY_TRUNCATED: { retryable: false, summary: 'the stored object ends early' },
  INTEGRITY_FORMAT: { retryable: false, summary: 'the stored object is not in the expected format' },
  CHUNK_SESSION_EXPIRED: { retryable: true, summary: 'the backup went quiet longer than the garbage collector waits: its chunks may be collected' },
  ENCRYPTION_KEY_MISSING: { retryable: false, summary: 'the encryption key named by the artifact is not available' },
  // restore and verification
  RESTORE_FAILED: { retryable: false, summary: 'the restore tool failed' },
  RESTORE_PATH_REFUSED: { retryable: false, summary: 'the snapshot holds a path that would be written outside the restore target' },
  RESTORE_TARGET_EXISTS: { retryable: false, summary: 'the restore target exists and overwrite was not requested' },
  VERIFY_MISMATCH: { retryable: false, summary: 'the restored data differs from the manifest' },
  WAL_MISSING: { retryable: false, summary: 'the WAL archive lacks a segment the recovery needs' },
  RECOVERY_TARGET_UNREACHABLE: { retryable: false, summary: 'no base backup and archived WAL reach the requested point in time' },
  // plumbing
  BREAKER_OPEN: { retryable: true, summary: 'a circuit breaker is open after repeated failures' },
  TIMEOUT: { retryable: true, summary: 'the operation timed out' },
  BUS_UNAVAILABLE: { retryable: true, summary: 'nats, its JetStream stream, or the service a request is for, did not take the message' },
  SHUTTING_DOWN: { retryable: true, summary: 'the service is shutting down' },
  ALERT_DELIVERY_FAILED: { retryable: true, summary: 'an alert webhook did not accept the alert' },
  INTERNAL: { retryable: false, summary: 'an unexpected internal error' },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

// Own keys only: `in` also finds Object.prototype's, so "toString" would pass for a code.
export const isErrorCode = (value: unknown): value is ErrorCode => typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);

/** The error shape carried in events. */
export interface ErrorInfo {
  readonly code: ErrorCode;
  readonly message: string;
  readonly retryable: boolean;
}

export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TidemarkError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** Normalises anything thrown into the wire shape; unknown errors become INTERNAL. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof TidemarkError) return error.toInfo();
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'INTERNAL', message, retryable: false };
}

export const isRetryable = (error: unknown): boolean => error instanceof TidemarkError && error.retryable;
