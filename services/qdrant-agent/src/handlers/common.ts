// Small pieces the qdrant-agent's handlers share; the helpers every agent shares live in @tidemark/service.
import type { Target } from '@tidemark/config';
import type { QdrantPort } from '@tidemark/qdrant';
import type { AgentBaseDeps, AgentContext } from '@tidemark/service';

/** The ports both handlers work through. */
export interface AgentDeps extends AgentBaseDeps {
  /** The (guarded) Qdrant port of a target; one per target, shared by backups and restores. */
  readonly portFor: (target: Target) => QdrantPort;
}

export type Context = AgentContext;
