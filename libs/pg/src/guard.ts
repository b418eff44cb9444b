import { TidemarkError } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { createBreaker, type Breaker, type Logger } from '@tidemark/runtime';
import { pgCluster, type PgCluster } from './cluster.js';
import type { ClusterRole } from './connection.js';

/** Runs one call through a circuit breaker (the runtime's `Breaker.fire`). */
export type Fire = <T>(call: () => Promise<T>) => Promise<T>;

/**
 * Wraps a cluster so that every call goes through `fire` (a wrapper with the same interface, as
 * storage's guardBackend): when PostgreSQL is down, an open breaker fails calls at once with
 * BREAKER_OPEN (retryable) instead of letting every command wait for its own connection timeout.
 */
export function guardCluster(cluster: PgCluster, fire: Fire): PgCluster {
  return {
    description: cluster.description,
    startDump: (database, options) => fire(() => cluster.startDump(database, options)),
    databaseExists: (database) => fire(() => cluster.databaseExists(database)),
    createDatabase: (database) => fire(() => cluster.createDatabase(database)),
    dropDatabase: (database) => fire(() => cluster.dropDatabase(database)),
    renameDatabase: (from, to) => fire(() => cluster.renameDatabase(from, to)),
    databaseComment: (database) => fire(() => cluster.databaseComment(database)),
    setDatabaseComment: (database, comment) => fire(() => cluster.setDatabaseComment(database, comment)),
    restore: (database, input, options) => fire(() => cluster.restore(database, input, options)),
    collectFacts: (database, options) => fire(() => cluster.collectFacts(database, options)),
  };
}

/**
 * A PostgreSQL cluster behind its own breaker. Only unavailability counts against it (a bad
 * dump or a refused password is an answer, not an outage), and there is no call timeout: dumps
 * and restores take as long as the data.
 */
export function openPgCluster(conn: PostgresConnection, role: ClusterRole, logger: Logger, env: NodeJS.ProcessEnv = process.env): PgCluster & { readonly breakerState: () => Breaker['state'] } {
  const cluster = pgCluster(conn, role, env);
  const breaker = createBreaker(`${role} postgres ${cluster.description}`, logger, {
    timeoutMs: 0,
    isFailure: (error) => error instanceof TidemarkError && (error.code === 'SOURCE_UNAVAILABLE' || error.code === 'SANDBOX_UNAVAILABLE'),
  });
  return { ...guardCluster(cluster, (call) => breaker.fire(call)), breakerState: () => breaker.state };
}
