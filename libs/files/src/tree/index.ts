// Owned by the snapshot side (tree writer and reader). Stubs keep the final signatures.
import type { Readable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import type { TreeEntry, TreeHeader } from './entry.js';

/** Parses a decoded tree (NDJSON) lazily: the header, then entries in walk order. INTEGRITY_FORMAT on a malformed line. */
export function parseTree(decoded: Readable | AsyncIterable<Uint8Array>): { header: Promise<TreeHeader>; entries: AsyncIterable<TreeEntry> } {
  void decoded;
  throw new TidemarkError('INTERNAL', 'not implemented yet');
}
