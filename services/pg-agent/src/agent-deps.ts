// The pg-agent's ports; the helpers every agent shares live in @tidemark/agent.
import { TidemarkError } from '@tidemark/contracts';
import type { PostgresConnection, Target } from '@tidemark/config';
import type { PgCluster } from '@tidemark/pg';
import type { AgentBaseDeps } from '@tidemark/agent';

/** The ports backups and restores work through. */
export interface AgentDeps extends AgentBaseDeps {
  readonly clusterFor: (target: Target) => PgCluster;
}

/** A pg target's connection; CONFIG_INVALID when the target has none. */
export function postgresOf(target: Target): PostgresConnection {
  if (!target.postgres) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no postgres connection`);
  return target.postgres;
}
