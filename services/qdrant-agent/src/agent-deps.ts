// The qdrant-agent's ports; the helpers every agent shares live in @tidemark/agent.
import type { Target } from '@tidemark/config';
import type { QdrantPort } from '@tidemark/qdrant';
import type { AgentBaseDeps, AgentContext } from '@tidemark/agent';

/** The ports backups and restores work through. */
export interface AgentDeps extends AgentBaseDeps {
  /** The (guarded) Qdrant port of a target; one per target, shared by backups and restores. */
  readonly portFor: (target: Target) => QdrantPort;
}

export type Context = AgentContext;
