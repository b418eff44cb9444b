// The error registry is what operators grep and alert rules match: every code must say whether a
// retry can help and what it means, and anything thrown must reach the wire in that shape.
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TidemarkError, isErrorCode, isRetryable, toErrorInfo, type ErrorCode } from '../src/index.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe('ERROR_CODES', () => {
  it.each(CODES)('%s has a retryable flag and a summary', (code) => {
    const entry = ERROR_CODES[code];
    expect(typeof entry.retryable).toBe('boolean');
    expect(entry.summary.trim().length).toBeGreaterThan(0);
    expect(code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
  });

  it.each([
    // Outages and timeouts heal by themselves: a retry can help.
    ['SOURCE_UNAVAILABLE', true], ['STORAGE_UNAVAILABLE', true], ['SANDBOX_UNAVAILABLE', true], ['TIMEOUT', true],
    ['BREAKER_OPEN', true], ['SHUTTING_DOWN', true], ['DUMP_FAILED', true], ['BUS_UNAVAILABLE', true],
    // Bad input and damaged data do not.
    ['COMMAND_INVALID', false], ['TARGET_UNKNOWN', false], ['INTEGRITY_CHECKSUM_MISMATCH', false], ['VERIFY_MISMATCH', false], ['INTERNAL', false],
  ] as const)('%s retryable: %s', (code, retryable) => {
    expect(ERROR_CODES[code].retryable).toBe(retryable);
  });

  it('isErrorCode knows exactly the registered codes', () => {
    for (const code of CODES) expect(isErrorCode(code)).toBe(true);
    for (const value of ['internal', 'NOPE', '', 42, undefined, null, 'toString', 'constructor']) expect(isErrorCode(value)).toBe(false);
  });
});

describe('TidemarkError', () => {
  it('takes its retryable flag from the registry unless told otherwise', () => {
    expect(new TidemarkError('STORAGE_UNAVAILABLE', 'down').retryable).toBe(true);
    expect(new TidemarkError('COMMAND_INVALID', 'bad').retryable).toBe(false);
    expect(new TidemarkError('STORAGE_UNAVAILABLE', 'gone for good', { retryable: false }).retryable).toBe(false);
  });

  it('keeps its cause', () => {
    const cause = new Error('socket hang up');
    const error = new TidemarkError('STORAGE_UNAVAILABLE', 'upload failed', { cause });
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('TidemarkError');
    expect(error).toBeInstanceOf(Error);
  });
});

describe('toErrorInfo', () => {
  it.each([
    ['a TidemarkError keeps its code and flag', new TidemarkError('TIMEOUT', 'pg_dump made no progress for 60 s'), { code: 'TIMEOUT', message: 'pg_dump made no progress for 60 s', retryable: true }],
    ['an overridden flag survives', new TidemarkError('DUMP_FAILED', 'permission denied', { retryable: false }), { code: 'DUMP_FAILED', message: 'permission denied', retryable: false }],
    ['a plain Error is INTERNAL', new TypeError('x is undefined'), { code: 'INTERNAL', message: 'x is undefined', retryable: false }],
    ['a string is INTERNAL', 'boom', { code: 'INTERNAL', message: 'boom', retryable: false }],
    ['undefined is INTERNAL', undefined, { code: 'INTERNAL', message: 'undefined', retryable: false }],
    ['an object is INTERNAL', { code: 'TIMEOUT' }, { code: 'INTERNAL', message: '[object Object]', retryable: false }],
  ])('%s', (_name, thrown, info) => {
    expect(toErrorInfo(thrown)).toEqual(info);
  });

  it('isRetryable is true only for a retryable TidemarkError', () => {
    expect(isRetryable(new TidemarkError('STORAGE_UNAVAILABLE', 'down'))).toBe(true);
    expect(isRetryable(new TidemarkError('COMMAND_INVALID', 'bad'))).toBe(false);
    expect(isRetryable(Object.assign(new Error('ECONNRESET'), { retryable: true }))).toBe(false);
    expect(isRetryable('STORAGE_UNAVAILABLE')).toBe(false);
  });
});
