import type { PgCluster } from './cluster.js';

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
