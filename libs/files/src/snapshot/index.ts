// Owned by the snapshot side. Stubs keep the final signatures.
import { TidemarkError } from '@tidemark/contracts';
import type { SnapshotOptions, SnapshotResult } from './api.js';

/** Walks the source, chunks what changed, stores new chunks, and streams the tree. */
export function takeSnapshot(options: SnapshotOptions): SnapshotResult {
  void options;
  throw new TidemarkError('INTERNAL', 'not implemented yet');
}
