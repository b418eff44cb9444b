// What a server started from a base backup is checked for, by a point-in-time restore (before it
// is handed over) and by the verifier (a base backup's proof): one set of check names for both.
import pg from 'pg';
import { TidemarkError, type VerificationCheck } from '@tidemark/contracts';
import { quoteIdent } from './connection.js';
import type { Queryable } from './facts.js';
import { parseLsn } from './wal-names.js';

export interface RestoredServerFacts {
  readonly systemIdentifier: string;
  readonly serverVersion: string;
  /** The timeline the promoted server writes on. */
  readonly timeline: number;
  readonly currentLsn: string;
  readonly inRecovery: boolean;
  /** The cluster's bootstrap superuser (oid 10). */
  readonly superuser: string;
}

/** The facts of the server `client` is connected to (any database). */
export async function readRestoredServerFacts(client: Queryable): Promise<RestoredServerFacts> {
  const { rows } = await client.query<{ sysid: string; version: string; walfile: string; checkpoint_tli: number; lsn: string; recovering: boolean; superuser: string }>(
    `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
            current_setting('server_version') AS version,
            pg_walfile_name(pg_current_wal_lsn()) AS walfile,
            (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
            pg_current_wal_lsn()::text AS lsn,
            pg_is_in_recovery() AS recovering,
            (SELECT rolname FROM pg_roles WHERE oid = 10) AS superuser`,
  );
  const row = rows[0];
  if (row === undefined) throw new TidemarkError('RESTORE_FAILED', 'the restored server answered a query for its facts with no row');
  // The WAL file being written names the current timeline even before the next checkpoint.
  const timeline = Math.max(parseInt(row.walfile.slice(0, 8), 16), Number(row.checkpoint_tli));
  return { systemIdentifier: row.sysid, serverVersion: row.version, timeline, currentLsn: row.lsn, inRecovery: row.recovering, superuser: row.superuser };
}

export interface RestoredServerExpectations {
  /** The source cluster's: a server of another cluster is no restore of it. */
  readonly systemIdentifier: string;
  /** The base backup's stop LSN: replay reached the backup's end when the promoted server writes past it. */
  readonly stopLsn: string;
  /** The base backup's timeline: a promoted point-in-time restore writes on a newer one (timeline:new). */
  readonly backupTimeline?: number;
  /** The source's server_version, when the server must run the same one (server-version). */
  readonly serverVersion?: string;
}

/** recovery:promoted, system-identifier, wal:consistent, and timeline:new and server-version when expected. */
export function restoredServerChecks(facts: RestoredServerFacts, expected: RestoredServerExpectations): VerificationCheck[] {
  const checks: VerificationCheck[] = [
    { name: 'recovery:promoted', ok: !facts.inRecovery, expected: false, actual: facts.inRecovery },
    { name: 'system-identifier', ok: facts.systemIdentifier === expected.systemIdentifier, expected: expected.systemIdentifier, actual: facts.systemIdentifier },
  ];
  if (expected.serverVersion !== undefined) {
    checks.push({ name: 'server-version', ok: facts.serverVersion === expected.serverVersion, expected: expected.serverVersion, actual: facts.serverVersion });
  }
  checks.push({ name: 'wal:consistent', ok: parseLsn(facts.currentLsn) >= parseLsn(expected.stopLsn), expected: `>= ${expected.stopLsn}`, actual: facts.currentLsn });
  if (expected.backupTimeline !== undefined) {
    checks.push({ name: 'timeline:new', ok: facts.timeline > expected.backupTimeline, expected: `> ${expected.backupTimeline}`, actual: facts.timeline });
  }
  return checks;
}

/** Per-table row counts of the database `client` is connected to (user tables; at most `limit`). */
export async function tableRowCounts(client: Queryable, limit = 500): Promise<Record<string, number>> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      ORDER BY 1, 2 LIMIT $1`,
    [limit],
  );
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`);
    counts[`${table.schema}.${table.name}`] = Number(rows[0]?.n ?? 0);
  }
  return counts;
}

/** A connection over the server's unix socket, closed when `body` settles. */
export async function withSocketClient<T>(socketDirectory: string, port: number, user: string, database: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ host: socketDirectory, port, user, database, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface RestoreCheckExpectations extends RestoredServerExpectations {
  /** The target's database, checked for a connection and row counts. */
  readonly database: string;
}

export interface RestoreCheckResult {
  readonly facts: RestoredServerFacts;
  readonly checks: VerificationCheck[];
  /** Checks whose failure makes the restore unusable (the rest are reported only). */
  readonly fatal: VerificationCheck[];
}

/**
 * The checks run on a promoted point-in-time restore: restoredServerChecks, and the target
 * database connectable with its per-table row counts. A database that did not exist at the
 * recovery target is reported, not fatal: the cluster is still usable.
 */
export async function checkRestoredServer(socketDirectory: string, port: number, user: string, expected: RestoreCheckExpectations): Promise<RestoreCheckResult> {
  const facts = await withSocketClient(socketDirectory, port, user, 'template1', readRestoredServerFacts);
  const checks = restoredServerChecks(facts, expected);
  const fatal = checks.filter((check) => !check.ok);
  try {
    const counts = await withSocketClient(socketDirectory, port, facts.superuser, expected.database, (client) => tableRowCounts(client));
    const tables = Object.keys(counts).length;
    checks.push({ name: `database ${expected.database}`, ok: true, actual: counts, detail: `connectable; ${tables} table${tables === 1 ? '' : 's'} counted` });
  } catch (error) {
    checks.push({ name: `database ${expected.database}`, ok: false, detail: `not connectable: ${(error as Error).message}` });
  }
  return { facts, checks, fatal };
}
