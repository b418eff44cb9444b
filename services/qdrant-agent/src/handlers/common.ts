// Small pieces the qdrant-agent's handlers share; the helpers every agent shares live in @tidemark/service.
import type { Readable } from 'node:stream';
import type { Manifest } from '@tidemark/contracts';
import type { Target } from '@tidemark/config';
import type { ArtifactStore } from '@tidemark/storage';
import { decodeCommitted, type KeyRing } from '@tidemark/pipeline';
import type { QdrantPort } from '@tidemark/qdrant';
import type { AgentBaseDeps, AgentContext } from '@tidemark/service';

/** The ports both handlers work through. */
export interface AgentDeps extends AgentBaseDeps {
  /** The (guarded) Qdrant port of a target; one per target, shared by backups and restores. */
  readonly portFor: (target: Target) => QdrantPort;
  /** How often the handlers tell the consumer they are still working (default 5 s). */
  readonly progressIntervalMs?: number;
}

export type Context = AgentContext;

/** The decoded (decrypted, decompressed, sha256-checked) bytes of a committed artifact. */
export async function openDecoded(store: ArtifactStore, keys: KeyRing, manifest: Manifest): Promise<Readable> {
  const stored = await store.openData(manifest);
  const decoded = decodeCommitted(stored, manifest, keys);
  decoded.once('close', () => stored.destroy());
  return decoded;
}
