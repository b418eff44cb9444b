// A stream that stops moving bytes never ends by itself: a frozen S3 server keeps its connection
// open, a hung tool keeps its pipe open. The stall detector turns "no bytes for N seconds" into an
// error, without capping how long a transfer that keeps moving may take.
import { Duplex, PassThrough, pipeline, type Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import { toBuffer, type Stage } from './stages.js';

export interface StallOptions {
  /** How long the source may deliver nothing while the consumer waits for it. */
  readonly stallMs: number;
  /** The error the stream fails with; default TIMEOUT "<what> made no progress for N s". */
  readonly stalled?: (stallMs: number) => Error;
  /** Names the stream in the default error, e.g. "reading base/1/manifest.json from s3://bucket/". */
  readonly what?: string;
}

export const stalledError = (what: string, stallMs: number): TidemarkError =>
  new TidemarkError('TIMEOUT', `${what} made no progress for ${formatSeconds(stallMs)}: the other end stopped answering; it will be retried`);

export const formatSeconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/**
 * A pipeline stage that fails when its source delivers nothing for `stallMs` while the next stage
 * is asking for more. Time the consumer spends not asking (backpressure: a slow pg_restore, a
 * slow upload) does not count, so only the source is judged. On a stall the source is destroyed
 * with the error, which frees whatever it holds (a socket, a child's pipe).
 * Use it in `stream.pipeline`, in encode/decode's step lists, or as a Transform via `Duplex.from`
 * (see `stallTransform`).
 */
export function stallDetector(options: StallOptions): Stage {
  const stalled = options.stalled ?? ((ms: number) => stalledError(options.what ?? 'the stream', ms));
  return async function* detectStall(source) {
    const iterator = source[Symbol.asyncIterator]();
    let stalledBy: Error | undefined;
    try {
      for (;;) {
        const next = iterator.next();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject((stalledBy = stalled(options.stallMs))), options.stallMs);
        });
        let result: IteratorResult<unknown>;
        try {
          result = await Promise.race([next, deadline]);
        } catch (error) {
          // The pending read settles once the source is destroyed; nobody waits for it any more.
          next.catch(() => undefined);
          throw error;
        } finally {
          clearTimeout(timer);
        }
        if (result.done) return;
        yield toBuffer(result.value);
      }
    } finally {
      if (stalledBy !== undefined) {
        (source as Partial<Readable>).destroy?.(stalledBy);
        // A stalled iterator cannot be returned (its next() is still pending); destroying the source ended it.
      } else {
        await iterator.return?.();
      }
    }
  };
}

/** The stall detector as a Transform-like Duplex, for code that composes streams rather than stages. */
export function stallTransform(options: StallOptions): Duplex {
  return Duplex.from(stallDetector(options));
}

/**
 * `readable` behind a stall detector: the returned stream fails with the stall error (and
 * `readable` is destroyed) when no bytes arrive for `stallMs` while it is being read.
 * Destroying the returned stream destroys `readable`.
 */
export function watchForStall(readable: Readable, options: StallOptions): Readable {
  const output = new PassThrough({ readableHighWaterMark: readable.readableHighWaterMark });
  (pipeline as unknown as (steps: unknown[], done: (error: Error | null) => void) => void)([readable, stallDetector(options), output], () => undefined);
  return output;
}
