// Kept apart from helpers.ts: a vi.mock factory imports it while the module under test (which
// helpers.ts imports) is still loading, and an import cycle there would never settle.
import type { ChunkerSettings } from '@tidemark/chunks';
import { TEST_CHUNKER } from './test-chunker.js';

/**
 * Fixed-size chunks of `avgBytes`: stands in for @tidemark/chunks' chunkStream until its
 * implementation is merged (the snapshotter only needs chunks in order that add up to the file).
 */
export async function* fixedSizeChunks(source: AsyncIterable<Uint8Array>, settings: ChunkerSettings = TEST_CHUNKER): AsyncGenerator<Buffer> {
  let pending = Buffer.alloc(0);
  for await (const piece of source) {
    pending = Buffer.concat([pending, piece]);
    while (pending.length >= settings.avgBytes) {
      yield pending.subarray(0, settings.avgBytes);
      pending = pending.subarray(settings.avgBytes);
    }
  }
  if (pending.length > 0) yield pending;
}
