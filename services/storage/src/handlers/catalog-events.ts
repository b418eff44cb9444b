// The catalog's event consumers. An event is only a hint about which artifact changed: the
// handler re-reads that artifact from the bucket, so a lost, duplicated or reordered event can
// never leave the catalog disagreeing with the bucket for longer than the next event or rebuild.
import type { ArtifactStored, VerifyFailed, VerifyPassed } from '@tidemark/contracts';
import type { HandlerContext, Outcome } from '@tidemark/runtime';
import type { Catalog } from '../catalog/catalog.js';

export interface CatalogEventDeps {
  readonly catalog: Catalog;
}

type ArtifactEvent = Pick<ArtifactStored | VerifyPassed | VerifyFailed, 'engine' | 'target' | 'artifactId'>;

/**
 * Handles artifact.stored, verify.passed and verify.failed alike. Storage errors propagate: the
 * consumer runner naks retryable ones (STORAGE_UNAVAILABLE, BREAKER_OPEN) with backoff.
 */
export async function handleArtifactEvent(event: ArtifactEvent, deps: CatalogEventDeps, context: Pick<HandlerContext, 'logger' | 'subject'>): Promise<Outcome> {
  const record = await deps.catalog.refresh(event.engine, event.target, event.artifactId);
  if (record) {
    context.logger.debug({ artifactId: event.artifactId, verification: record.entry.verification, subject: context.subject }, 'catalog entry refreshed');
  } else {
    // Pruned since, or a publisher bug: either way the bucket has no manifest, so nothing to list.
    context.logger.warn({ artifactId: event.artifactId, subject: context.subject }, 'event names an artifact with no committed manifest; not listed');
  }
  return { type: 'ack' };
}
