// The half of a test PostgreSQL server that does not care how it was started (a local cluster or a
// container): its interface, the client pools, the pgvector check.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface StartPostgresOptions {
  /** Require the pgvector extension to be installable (CREATE EXTENSION vector). */
  readonly pgvector?: boolean;
  /** Extra server settings, passed as `-c name=value`; they override the test defaults. */
  readonly settings?: Readonly<Record<string, string>>;
}

/** libpq-style connection parameters, as they appear in tidemark.yaml (the password travels apart). */
export interface PostgresConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly dataDir: string;
  /** libpq-style connection for the config file: {host, port, user, database: 'postgres'}. */
  connection(database?: string): PostgresConnection;
  url(database?: string): string;
  query<T = any>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  createDatabase(name: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  /** Fast shutdown; removes the data dir. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Fast shutdown and start again on the same data dir (the port may change for containers).
   * `whileDown` runs between the two (an outage a test observes); containers ignore it.
   */
  restart?(whileDown?: () => Promise<void>): Promise<void>;
}

/** A random password that needs no quoting in a URL or a config file. */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The client half shared by the local and the container servers: one small pool per database,
 * opened on first use and closed on stop, restart or drop.
 */
export function postgresClient(endpoint: () => { host: string; port: number }, user: string, password: string) {
  const pools = new Map<string, pg.Pool>();

  const poolFor = (database: string): pg.Pool => {
    let pool = pools.get(database);
    if (pool === undefined) {
      const { host, port } = endpoint();
      pool = new pg.Pool({ host, port, user, password, database, max: 4, idleTimeoutMillis: 5000 });
      // An idle connection dies when the server stops or restarts; the next query reconnects.
      pool.on('error', () => undefined);
      pools.set(database, pool);
    }
    return pool;
  };

  const closePool = async (database: string) => {
    const pool = pools.get(database);
    if (pool === undefined) return;
    pools.delete(database);
    await pool.end().catch(() => undefined);
  };

  const query = async <T = any>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> => {
    const result = await poolFor(database).query(sql, params);
    return result.rows as T[];
  };

  return {
    connection(database = 'postgres'): PostgresConnection {
      const { host, port } = endpoint();
      return { host, port, user, database };
    },
    url(database = 'postgres'): string {
      const { host, port } = endpoint();
      return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}`;
    },
    query,
    async createDatabase(name: string): Promise<void> {
      await query(`CREATE DATABASE ${quoteIdentifier(name)}`);
    },
    async dropDatabase(name: string): Promise<void> {
      await closePool(name);
      await query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
    },
    async closeAll(): Promise<void> {
      await Promise.all([...pools.keys()].map(closePool));
    },
  };
}

/** Fails with a clear message unless CREATE EXTENSION vector would work on this server. */
export async function ensurePgvectorAvailable(server: Pick<PostgresServer, 'query'>): Promise<void> {
  const rows = await server.query<{ default_version: string }>(
    `SELECT default_version FROM pg_available_extensions WHERE name = 'vector'`,
  );
  if (rows.length === 0) {
    throw new Error(
      'pgvector is not installed for postgresql 15 (no vector.control in its extension dir): run `bash scripts/install-pgvector.sh` as root',
    );
  }
}

/** Fails clearly (and stops the server) when `pgvector: true` was asked for but is not installed. */
export async function withPgvectorChecked(server: PostgresServer, options: { pgvector?: boolean }): Promise<PostgresServer> {
  if (options.pgvector !== true) return server;
  try {
    await ensurePgvectorAvailable(server);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}
