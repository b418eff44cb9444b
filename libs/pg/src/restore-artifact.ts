// Stored artifact → decode → pg_restore: shared by the restore handler and the verifier.
import type { Manifest } from '@tidemark/contracts';
import { openDecoded, type ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import type { PgCluster } from './cluster.js';
import { reportingBytes } from '@tidemark/runtime';

/**
 * Restores a committed artifact into an existing (empty) database. Integrity problems surface as
 * the decoder's TidemarkError (INTEGRITY_*, ENCRYPTION_KEY_MISSING), pg_restore's as RESTORE_FAILED.
 */
export async function restoreArtifact(
  cluster: PgCluster,
  database: string,
  manifest: Manifest,
  deps: { readonly store: ArtifactStore; readonly keys: KeyRing },
  job: { readonly progress: (what?: string) => void; readonly signal?: AbortSignal },
): Promise<void> {
  const decoded = await openDecoded(deps.store, manifest, deps.keys);
  // Progress is bytes reaching pg_restore and each step it starts: a stalled download or a hung
  // pg_restore stops both.
  const counted = reportingBytes(decoded, (bytes) => job.progress(`pg_restore read ${bytes} bytes`));
  try {
    await cluster.restore(database, counted, { onStep: (step) => job.progress(`pg_restore: ${step}`), ...(job.signal ? { signal: job.signal } : {}) });
  } finally {
    decoded.destroy();
    counted.destroy();
  }
}
