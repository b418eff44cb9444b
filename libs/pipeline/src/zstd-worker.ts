// zstd decompression on a worker thread, for large streams (restoring a base backup): on the event
// loop it was a third of the decode time, serialised with decryption, hashing and the writes of
// the extracted files. The worker runs the same native context as the in-thread stage and hands
// back one output buffer at a time inside a credit window, so memory stays bounded however far a
// chunk expands.
//
// The worker's code is a string (eval), so it runs the same whether this module is loaded from
// TypeScript sources (tests) or from dist; it loads the native binding by absolute path.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { toBuffer, type Stage } from './stages.js';

/** Output buffers the worker may hand over before the consumer has taken them. */
const OUTPUT_WINDOW = 8;
/** Input chunks queued at the worker, so it never waits for the next one. */
const INPUT_WINDOW = 2;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const binding = require(workerData.binding);
const context = new binding.DCtx();
const outSize = binding.dStreamOutSize();
const inbox = [];
let credits = workerData.window;
let wake;
parentPort.on('message', (message) => {
  if (message.type === 'credit') credits += 1;
  else inbox.push(message);
  const resume = wake; wake = undefined; if (resume) resume();
});
const waitFor = (ready) => (ready() ? undefined : new Promise((resolve) => { wake = () => resolve(waitFor(ready)); }));
(async () => {
  let inFrame = false;
  for (;;) {
    await waitFor(() => inbox.length > 0);
    const message = inbox.shift();
    if (message.type === 'end') { parentPort.postMessage({ type: 'done', inFrame }); return; }
    let input = Buffer.from(message.chunk);
    for (;;) {
      const output = Buffer.allocUnsafeSlow(outSize);
      let progress;
      try { progress = context.decompressStream(output, input); }
      catch (error) { parentPort.postMessage({ type: 'error', message: String(error && error.message || error) }); return; }
      const [remaining, produced, consumed] = progress;
      input = input.subarray(consumed);
      inFrame = remaining !== 0;
      if (produced > 0) {
        await waitFor(() => credits > 0);
        credits -= 1;
        const piece = output.buffer.slice(output.byteOffset, output.byteOffset + produced);
        parentPort.postMessage({ type: 'output', piece }, [piece]);
      }
      if (input.length === 0 && (produced < output.length || remaining === 0)) break;
    }
    parentPort.postMessage({ type: 'consumed' });
  }
})();
`;

type FromWorker =
  | { readonly type: 'output'; readonly piece: ArrayBuffer }
  | { readonly type: 'consumed' }
  | { readonly type: 'done'; readonly inFrame: boolean }
  | { readonly type: 'error'; readonly message: string };

/**
 * The worker-thread decompression stage. Errors: `dataError(message, endedMidFrame)` builds what
 * the stage throws for bad data or a stream ending inside a frame; the source's own errors pass
 * through unchanged.
 */
export function zstdWorkerDecompressStage(dataError: (message: string, endedMidFrame: boolean) => Error): Stage {
  const binding = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
  return async function* decompressZstdInWorker(source) {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { binding, window: OUTPUT_WINDOW } });
    const events: FromWorker[] = [];
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = () => {
      const resume = wake;
      wake = undefined;
      resume?.();
    };
    worker.on('message', (message: FromWorker) => {
      events.push(message);
      notify();
    });
    worker.on('error', (error) => {
      failure ??= error;
      notify();
    });
    worker.on('exit', () => {
      failure ??= new Error('the zstd worker exited early');
      notify();
    });

    // Feeds the worker from the source, at most INPUT_WINDOW chunks ahead of what it consumed.
    let inFlight = 0;
    let feedWake: (() => void) | undefined;
    let stopped = false;
    void (async () => {
      for await (const piece of source) {
        if (stopped) return;
        while (inFlight >= INPUT_WINDOW && !stopped) await new Promise<void>((resume) => (feedWake = resume));
        if (stopped) return;
        const chunk = toBuffer(piece);
        // A copy the worker owns (the chunk may be a view into a larger, pooled buffer).
        const copy = new Uint8Array(chunk).buffer;
        inFlight += 1;
        worker.postMessage({ type: 'input', chunk: copy }, [copy]);
      }
      if (!stopped) worker.postMessage({ type: 'end' });
    })().catch((error: unknown) => {
      failure ??= error;
      notify();
    });

    try {
      for (;;) {
        const event = events.shift();
        if (event === undefined) {
          if (failure !== undefined) throw failure;
          await new Promise<void>((resume) => (wake = resume));
          continue;
        }
        if (event.type === 'output') {
          worker.postMessage({ type: 'credit' });
          yield Buffer.from(event.piece);
        } else if (event.type === 'consumed') {
          inFlight -= 1;
          const resume = feedWake;
          feedWake = undefined;
          resume?.();
        } else if (event.type === 'error') {
          throw dataError(event.message, false);
        } else {
          if (event.inFrame) throw dataError('zstd stream ended inside a frame', true);
          return;
        }
      }
    } finally {
      // The feeder ends by itself: it sees `stopped`, or its source is destroyed by the pipeline.
      stopped = true;
      feedWake?.();
      await worker.terminate();
    }
  };
}
