import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { natsFailure, NO_RESPONDERS, TIMEOUT } from '../src/nats-errors.js';

const natsError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('natsFailure', () => {
  it.each([
    [natsError(NO_RESPONDERS, '503'), 'BUS_UNAVAILABLE', true, /nothing answers on catalog\.list: start the storage service/],
    [natsError(TIMEOUT, 'TIMEOUT'), 'TIMEOUT', true, /no answer on catalog\.list in time/],
    // Whatever else NATS reports is trouble on the bus, never an internal error of the CLI's.
    [natsError('CONNECTION_CLOSED', 'connection closed'), 'BUS_UNAVAILABLE', true, /request on catalog\.list failed: connection closed/],
  ] as const)('%s → %s', (error, code, retryable, message) => {
    const failure = natsFailure(error, 'catalog.list', 'the storage service');
    expect(failure).toMatchObject({ code, retryable });
    expect(failure.message).toMatch(message);
  });

  it('passes a TidemarkError through', () => {
    const coded = new TidemarkError('COMMAND_INVALID', 'kind: expected one of logical, base');
    expect(natsFailure(coded, 'catalog.list', 'the storage service')).toBe(coded);
  });
});
