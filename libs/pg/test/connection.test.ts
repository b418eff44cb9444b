import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { toPgError } from '../src/connection.js';

const driverError = (code: string | undefined, message: string) => Object.assign(new Error(message), code === undefined ? {} : { code });

describe('toPgError', () => {
  it.each([
    // [role, driver code, message, expected code, retryable]
    ['source', '28P01', 'password authentication failed', 'SOURCE_AUTH_FAILED', false],
    ['sandbox', '28P01', 'password authentication failed', 'CONFIG_INVALID', false],
    ['source', '3D000', 'database "nope" does not exist', 'CONFIG_INVALID', false],
    ['source', 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432', 'SOURCE_UNAVAILABLE', true],
    ['sandbox', 'ECONNRESET', 'read ECONNRESET', 'SANDBOX_UNAVAILABLE', true],
    ['source', '57P01', 'terminating connection due to administrator command', 'SOURCE_UNAVAILABLE', true],
    ['source', '08006', 'connection failure', 'SOURCE_UNAVAILABLE', true],
    ['source', '53300', 'too many connections', 'SOURCE_UNAVAILABLE', true],
    ['source', undefined, 'Connection terminated unexpectedly', 'SOURCE_UNAVAILABLE', true],
    // The server's own answers are facts about it, never INTERNAL.
    ['source', '42501', 'permission denied for table documents', 'QUERY_FAILED', false],
    ['sandbox', '53100', 'could not extend file: No space left on device', 'QUERY_FAILED', false],
    ['source', '57014', 'canceling statement due to user request', 'QUERY_FAILED', false],
    // Not a server answer at all: a bug of ours stays INTERNAL.
    ['source', undefined, 'Cannot read properties of undefined', 'INTERNAL', false],
    ['source', 'ERR_INVALID_ARG_TYPE', 'The "path" argument must be of type string', 'INTERNAL', false],
  ] as const)('%s %s "%s" → %s', (role, code, message, expected, retryable) => {
    const error = toPgError(driverError(code, message), role, 'reading facts');
    expect(error).toBeInstanceOf(TidemarkError);
    expect(error.code).toBe(expected);
    expect(error.retryable).toBe(retryable);
    expect(error.message).toContain('reading facts');
    expect(error.message).toContain(message);
  });

  it('passes a TidemarkError through', () => {
    const coded = new TidemarkError('DUMP_FAILED', 'pg_dump exited with 1');
    expect(toPgError(coded, 'source', 'dumping')).toBe(coded);
  });
});
