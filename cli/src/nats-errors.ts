import { TidemarkError } from '@tidemark/contracts';

/** NATS client error codes the CLI explains (nats.js ErrorCode values). */
export const NO_RESPONDERS = '503';
export const TIMEOUT = 'TIMEOUT';

/** Turns a NATS client error into a TidemarkError that tells the user what to do. */
export function natsFailure(error: unknown, subject: string, who: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === NO_RESPONDERS) {
    return new TidemarkError('BUS_UNAVAILABLE', `nothing answers on ${subject}: start ${who} and try again`, { cause: error });
  }
  if (code === TIMEOUT) {
    return new TidemarkError('TIMEOUT', `no answer on ${subject} in time: check ${who} or raise --timeout`, { cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new TidemarkError('BUS_UNAVAILABLE', `request on ${subject} failed: ${detail}`, { cause: error });
}
