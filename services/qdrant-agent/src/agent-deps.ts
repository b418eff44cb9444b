// The qdrant-agent's ports and what its backups and restores share; the helpers every agent shares
// live in @tidemark/agent.
import type { Readable } from 'node:stream';
import { QdrantSourceFacts, SchemaError, TidemarkError, type Manifest } from '@tidemark/contracts';
import type { Target } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { decodeCommitted, type KeyRing } from '@tidemark/pipeline';
import type { QdrantPort } from '@tidemark/qdrant';
import type { AgentBaseDeps, AgentContext } from '@tidemark/agent';

/** The ports backups and restores work through. */
export interface AgentDeps extends AgentBaseDeps {
  /** The (guarded) Qdrant port of a target; one per target, shared by backups and restores. */
  readonly portFor: (target: Target) => QdrantPort;
  /** How often the handlers tell the consumer they are still working (default 5 s). */
  readonly progressIntervalMs?: number;
}

export type Context = AgentContext;

/** A manifest's `source` read as QdrantSourceFacts; anything else is an INTEGRITY_FORMAT error. */
export function qdrantFactsOf(manifest: Pick<Manifest, 'id' | 'source'>): QdrantSourceFacts {
  try {
    return QdrantSourceFacts.parse(manifest.source, 'source');
  } catch (error) {
    if (error instanceof SchemaError) {
      throw new TidemarkError('INTEGRITY_FORMAT', `manifest of artifact ${manifest.id} has no valid qdrant facts (${error.message}); it was not written by the qdrant agent`);
    }
    throw error;
  }
}

/** The decoded (decrypted, decompressed, sha256-checked) bytes of a committed artifact. */
export async function openDecoded(store: ArtifactStore, keys: KeyRing, manifest: Manifest): Promise<Readable> {
  const stored = await store.openData(manifest);
  const decoded = decodeCommitted(stored, manifest, keys);
  decoded.once('close', () => stored.destroy());
  return decoded;
}
