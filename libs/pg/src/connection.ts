// pg client settings from a configured connection, and the mapping of driver errors onto Tidemark's
// error codes. The same code serves sources (the agent) and the sandbox (the verifier); only the
// code used for "cannot reach it" differs.
import pg from 'pg';
import { TidemarkError, type ErrorCode } from '@tidemark/contracts';
import { readSecret, type PostgresConnection } from '@tidemark/config';

export type ClusterRole = 'source' | 'sandbox';

const UNAVAILABLE: Record<ClusterRole, ErrorCode> = { source: 'SOURCE_UNAVAILABLE', sandbox: 'SANDBOX_UNAVAILABLE' };

export function clientConfig(conn: PostgresConnection, database: string, env: NodeJS.ProcessEnv = process.env): pg.ClientConfig {
  const password = readSecret(conn, env);
  const ssl = conn.sslmode === 'require' ? { rejectUnauthorized: false } : conn.sslmode === 'verify-ca' || conn.sslmode === 'verify-full' ? { rejectUnauthorized: true } : false;
  return {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database,
    ...(password !== undefined ? { password } : {}),
    ssl,
    application_name: 'tidemark',
    connectionTimeoutMillis: 15_000,
  };
}

// Network failures and server states after which trying again later may work.
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);
// SQLSTATE classes 08 (connection exception), 57P0x (shutdown, cannot connect now), 53300 (too many connections).
const TRANSIENT_SQLSTATES = /^(08...|57P0[1-4]|53300)$/;
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Converts a pg driver error into a TidemarkError; TidemarkErrors pass through. */
export function toPgError(error: unknown, role: ClusterRole, what: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && (code === '28P01' || code === '28000')) {
    return new TidemarkError(role === 'source' ? 'SOURCE_AUTH_FAILED' : 'CONFIG_INVALID', `${what}: the ${role} refused the credentials (${message}); check the user and password settings`, { cause: error });
  }
  if (typeof code === 'string' && code === '3D000') {
    return new TidemarkError('CONFIG_INVALID', `${what}: ${message}; check the configured database name`, { cause: error });
  }
  const transient =
    (typeof code === 'string' && (TRANSIENT_NODE_CODES.has(code) || TRANSIENT_SQLSTATES.test(code))) ||
    /timeout|terminated unexpectedly|connection terminated|not queryable/i.test(message);
  if (transient) return new TidemarkError(UNAVAILABLE[role], `${what}: the ${role} postgres could not be reached (${message})`, { cause: error });
  // The server answered, with an error of its own (a missing privilege, a full disk, a cancelled
  // statement): a fact about that server for a person to read, not a fault of Tidemark's.
  if (typeof code === 'string' && SQLSTATE.test(code)) {
    return new TidemarkError('QUERY_FAILED', `${what}: the ${role} postgres answered with an error: ${message} (SQLSTATE ${code})`, { cause: error });
  }
  return new TidemarkError('INTERNAL', `${what}: ${message}`, { cause: error });
}

/** Opens a client; connection failures become SOURCE_/SANDBOX_UNAVAILABLE or an auth error. */
export async function openClient(conn: PostgresConnection, database: string, role: ClusterRole, env: NodeJS.ProcessEnv = process.env): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(conn, database, env));
  // An idle client whose server goes away emits 'error'; the next query reports it instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw toPgError(error, role, `connecting to ${conn.host}:${conn.port}/${database}`);
  }
  return client;
}

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
