import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { failureOf, requestAgainHint } from '../src/agent-handlers.js';

const unreachable = () => new TidemarkError('SOURCE_UNAVAILABLE', 'pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433)');
const hint = requestAgainHint('backup', 'pg', 'demo');

describe('failureOf: the layer that knows whether a retry follows writes the sentence', () => {
  it('a retryable failure with attempts left says which attempt it was and that it will be retried', () => {
    expect(failureOf(unreachable(), { attempt: 2, maxDeliver: 5 }, hint)).toEqual({
      final: false,
      info: {
        code: 'SOURCE_UNAVAILABLE',
        retryable: true,
        message: 'pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433); attempt 2 of 5, it will be retried',
      },
    });
  });

  it('the last attempt says it gave up, after how many attempts, and what to do', () => {
    const { final, info } = failureOf(unreachable(), { attempt: 5, maxDeliver: 5 }, hint);
    expect(final).toBe(true);
    expect(info.message).toBe(
      'gave up after 5 attempts: pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433). '
      + 'Fix the cause and request the backup again (`tidemark backup pg demo`).',
    );
    expect(info.message).not.toMatch(/will be retried/);
  });

  it('a permanent error is final at once and keeps its own advice', () => {
    const error = new TidemarkError('SOURCE_AUTH_FAILED', 'pg_dump: the source refused the credentials; check the user and password settings');
    expect(failureOf(error, { attempt: 1, maxDeliver: 5 }, hint)).toEqual({ final: true, info: error.toInfo() });
  });

  it('an unlimited redelivery count never gives up', () => {
    expect(failureOf(unreachable(), { attempt: 9, maxDeliver: -1 }, hint)).toMatchObject({
      final: false,
      info: { message: expect.stringMatching(/; attempt 9, it will be retried$/) },
    });
  });

  it('keeps the advice when the cause is too long for an event', () => {
    const long = new TidemarkError('DUMP_FAILED', `pg_dump exited with code 1: ${'x'.repeat(5000)}`);
    const { info } = failureOf(long, { attempt: 3, maxDeliver: 3 }, hint);
    expect(info.message.length).toBeLessThanOrEqual(2000);
    expect(info.message.endsWith(hint)).toBe(true);
  });

  it('a restore names the restore command', () => {
    expect(requestAgainHint('restore', 'qdrant', 'vectors')).toBe('Fix the cause and request the restore again (`tidemark restore qdrant vectors` with the same options).');
  });
});
