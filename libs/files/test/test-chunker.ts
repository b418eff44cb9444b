import type { ChunkerSettings } from '@tidemark/chunks';

/** Small chunks, so that small test files still make several. */
export const TEST_CHUNKER: ChunkerSettings = { minBytes: 4 * 1024, avgBytes: 16 * 1024, maxBytes: 64 * 1024 };
