// The reachability probe of a pg target for the agent's health: one connection and `SELECT 1`.
import { TidemarkError } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { openClient, toPgError } from '@tidemark/pg';
import type { SourceProbe } from '@tidemark/runtime';

export function pgSourceProbe(conn: PostgresConnection, env: NodeJS.ProcessEnv = process.env): SourceProbe {
  return async (signal) => {
    const client = await openClient(conn, conn.database, 'source', env);
    // A probe that timed out meanwhile must not leave its connection open.
    const close = () => void client.end().catch(() => undefined);
    if (signal.aborted) return close();
    try {
      await client.query('SELECT 1');
    } catch (error) {
      throw toPgError(error, 'source', `probing ${conn.host}:${conn.port}/${conn.database}`);
    } finally {
      close();
    }
  };
}

/** TIDEMARK_SOURCE_PROBE_SECONDS (default 15): how often each source's reachability is probed. */
export function sourceProbeIntervalMs(env: NodeJS.ProcessEnv): number {
  const raw = env['TIDEMARK_SOURCE_PROBE_SECONDS']?.trim();
  if (raw === undefined || raw === '') return 15_000;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new TidemarkError('CONFIG_INVALID', `TIDEMARK_SOURCE_PROBE_SECONDS must be a number of seconds above 0, got ${JSON.stringify(raw)}`);
  }
  return Math.round(seconds * 1000);
}
