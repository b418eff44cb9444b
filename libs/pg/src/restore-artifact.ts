// Stored artifact → decode → pg_restore: shared by the restore handler and the verifier.
import type { Manifest } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import { decodeCommitted, type KeyRing } from '@tidemark/pipeline';
import type { PgCluster } from './cluster.js';

/**
 * Restores a committed artifact into an existing (empty) database. Integrity problems surface as
 * the decoder's TidemarkError (INTEGRITY_*, ENCRYPTION_KEY_MISSING), pg_restore's as RESTORE_FAILED.
 */
export async function restoreArtifact(
  cluster: PgCluster,
  database: string,
  manifest: Manifest,
  deps: { readonly store: ArtifactStore; readonly keys: KeyRing },
  progress: { readonly working: () => void; readonly signal?: AbortSignal; readonly heartbeatMs?: number },
): Promise<void> {
  const stored = await deps.store.openData(manifest);
  const decoded = decodeCommitted(stored, manifest, deps.keys);
  const heartbeat = setInterval(() => progress.working(), progress.heartbeatMs ?? 5_000);
  try {
    await cluster.restore(database, decoded, progress.signal ? { signal: progress.signal } : {});
  } finally {
    clearInterval(heartbeat);
    stored.destroy();
    decoded.destroy();
  }
}
