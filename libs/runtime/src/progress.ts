// Liveness by progress: a job reports progress when bytes move, never on a timer, so a hung
// download or tool stops the reports and the consumer runner's stall window ends the job.
import { Transform, pipeline, type Readable } from 'node:stream';

/**
 * `source` passed through unchanged, with `report` called for every chunk with the bytes so far.
 * An error of `source` reaches the returned stream, so the reader fails with it.
 */
export function reportingBytes(source: Readable, report: (bytes: number) => void): Readable {
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      report(bytes);
      done(null, chunk);
    },
  });
  pipeline(source, counted, () => undefined);
  return counted;
}
