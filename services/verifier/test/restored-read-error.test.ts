import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { restoredReadError } from '../src/pg-base-verify.js';

const pgError = (code: string | undefined, message: string) => Object.assign(new Error(message), code === undefined ? {} : { code });

describe('restoredReadError: a coded error for whatever reading the restored data throws', () => {
  it.each([
    ['missing extension file', pgError('58P01', 'could not access file "$libdir/vector"'), 'CONFIG_INVALID', false],
    ['corrupted page', pgError('XX001', 'invalid page in block 0'), 'VERIFY_MISMATCH', false],
    ['data exception while reading', pgError('22P02', 'invalid input syntax'), 'VERIFY_MISMATCH', false],
    ['disk full on the verifier host', pgError('53100', 'could not extend file'), 'SANDBOX_UNAVAILABLE', true],
    ['scratch server shut down', pgError('57P01', 'terminating connection due to administrator command'), 'SANDBOX_UNAVAILABLE', true],
    ['connection lost', pgError(undefined, 'Connection terminated unexpectedly'), 'SANDBOX_UNAVAILABLE', true],
    ['socket reset', pgError('ECONNRESET', 'read ECONNRESET'), 'SANDBOX_UNAVAILABLE', true],
    ['anything else', new Error('something odd'), 'VERIFY_MISMATCH', false],
    ['not even an Error', 'a string', 'VERIFY_MISMATCH', false],
  ])('%s', (_name, thrown, code, retryable) => {
    const error = restoredReadError(thrown, 15, 'app');
    expect(error).toBeInstanceOf(TidemarkError);
    expect(error).toMatchObject({ code, retryable });
    expect(error.code).not.toBe('INTERNAL');
  });

  it('keeps a TidemarkError as it is', () => {
    const shutdown = new TidemarkError('SHUTTING_DOWN', 'stop');
    expect(restoredReadError(shutdown, 15, 'app')).toBe(shutdown);
  });
});
