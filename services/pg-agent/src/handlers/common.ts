// The pg-agent's handler ports; the helpers every agent shares live in @tidemark/agent.
import type { Target } from '@tidemark/config';
import type { PgCluster } from '@tidemark/pg';
import type { AgentBaseDeps } from '@tidemark/agent';

/** The ports both handlers work through. */
export interface AgentDeps extends AgentBaseDeps {
  readonly clusterFor: (target: Target) => PgCluster;
}
