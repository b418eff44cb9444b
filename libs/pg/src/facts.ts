// Facts about a database: what the backup recorded and what the verifier recomputes on the
// restored copy. Both sides run exactly this code, so a difference means the data differs.
import type { PgSourceFacts, TableFacts, VectorProbe } from '@tidemark/contracts';
import { quoteIdent } from './connection.js';

/** The slice of pg.Client the facts need (a fake can stand in for it in tests). */
export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export interface FactsOptions {
  /** Compute per-table checksums (reads every row once). */
  readonly tableChecksums: boolean;
  /** Nearest neighbours per probe. */
  readonly probeK?: number;
  readonly snapshot?: string;
}

export const DEFAULT_PROBE_K = 5;

/**
 * Fixes the settings that change a row's text form, so that checksums taken on two servers (or two
 * sessions with different defaults) agree for equal data.
 */
export const DETERMINISTIC_TEXT_SETTINGS = [
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, YMD'",
  "SET LOCAL IntervalStyle = 'postgres'",
  'SET LOCAL extra_float_digits = 1',
  "SET LOCAL bytea_output = 'hex'",
] as const;

// User tables: ordinary tables (partitions count on their own, their parents would count twice),
// outside the system schemas, and not owned by an extension (pg_dump does not dump their rows).
const USER_TABLES = `
  SELECT n.nspname AS schema, c.relname AS name, c.oid::int8 AS oid
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY n.nspname, c.relname`;

// vector columns of user tables whose primary key is a single column.
const VECTOR_COLUMNS = `
  SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, k.attname AS key_column
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1
  JOIN pg_attribute k ON k.attrelid = c.oid AND k.attnum = i.indkey[0]
  WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND t.typname = 'vector'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  ORDER BY n.nspname, c.relname, a.attname`;

const qualified = (schema: string, name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;

/**
 * Collects the facts of the current database. Call it inside a transaction (the backup's
 * REPEATABLE READ snapshot), because the text settings are SET LOCAL.
 */
export async function collectFacts(db: Queryable, options: FactsOptions): Promise<PgSourceFacts> {
  for (const statement of DETERMINISTIC_TEXT_SETTINGS) await db.query(statement);
  const server = await db.query<{ version: string; num: string; database: string; size: string }>(
    "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num, current_database() AS database, pg_database_size(current_database())::text AS size",
  );
  const info = server.rows[0];
  if (!info) throw new Error('the server returned no version row');
  const extensions = await db.query<{ name: string; version: string }>('SELECT extname AS name, extversion AS version FROM pg_extension ORDER BY extname');
  const tables = await db.query<{ schema: string; name: string }>(USER_TABLES);
  const tableFacts: TableFacts[] = [];
  for (const table of tables.rows) tableFacts.push(await tableFactsOf(db, table.schema, table.name, options.tableChecksums));
  const vectorProbes = await vectorProbesOf(db, extensions.rows, options.probeK ?? DEFAULT_PROBE_K);
  return {
    serverVersion: info.version,
    serverVersionNum: Number(info.num),
    database: info.database,
    databaseSizeBytes: Number(info.size),
    extensions: extensions.rows.map((e) => ({ name: e.name, version: e.version })),
    tables: tableFacts,
    vectorProbes,
    ...(options.snapshot ? { snapshot: options.snapshot } : {}),
  };
}

async function tableFactsOf(db: Queryable, schema: string, name: string, withChecksum: boolean): Promise<TableFacts> {
  const from = qualified(schema, name);
  if (!withChecksum) {
    const counted = await db.query<{ rows: string }>(`SELECT count(*)::text AS rows FROM ${from}`);
    return { schema, name, rows: Number(counted.rows[0]?.rows ?? 0) };
  }
  // Order-independent: a sum of per-row 64-bit hashes of the row's text form (numeric, so it
  // cannot overflow). Row order after a restore differs; the sum does not.
  const summed = await db.query<{ rows: string; checksum: string }>(
    `SELECT count(*)::text AS rows, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS checksum FROM ${from} AS t`,
  );
  const row = summed.rows[0];
  return { schema, name, rows: Number(row?.rows ?? 0), checksum: `${row?.rows ?? 0}:${row?.checksum ?? 0}` };
}

async function vectorProbesOf(db: Queryable, extensions: readonly { name: string }[], k: number): Promise<VectorProbe[]> {
  if (!extensions.some((e) => e.name === 'vector')) return [];
  const where = await db.query<{ schema: string }>("SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'");
  const vectorSchema = where.rows[0]?.schema;
  if (vectorSchema === undefined) return [];
  // Schema-qualified so the probe works whatever the search_path.
  const distance = `OPERATOR(${quoteIdent(vectorSchema)}.<->)`;
  const columns = await db.query<{ schema: string; table: string; column: string; key_column: string }>(VECTOR_COLUMNS);
  const probes: VectorProbe[] = [];
  for (const c of columns.rows) {
    const from = qualified(c.schema, c.table);
    const col = quoteIdent(c.column);
    const key = quoteIdent(c.key_column);
    const first = await db.query<{ key: string }>(`SELECT ${key}::text AS key FROM ${from} WHERE ${col} IS NOT NULL ORDER BY ${key} LIMIT 1`);
    const queryKey = first.rows[0]?.key;
    if (queryKey === undefined) continue;
    // Exact search: the MATERIALIZED scan keeps approximate indexes (ivfflat, hnsw) out of it,
    // whose answers may differ between the source and a rebuilt index. Ties are broken by key.
    const nearest = await db.query<{ key: string }>(
      `WITH q AS (SELECT ${col} AS v FROM ${from} WHERE ${key}::text = $1 LIMIT 1),
            d AS MATERIALIZED (SELECT ${key} AS key, ${col} ${distance} (SELECT v FROM q) AS distance FROM ${from} WHERE ${col} IS NOT NULL)
       SELECT key::text AS key FROM d ORDER BY distance, key LIMIT ${Number(k)}`,
      [queryKey],
    );
    probes.push({ schema: c.schema, table: c.table, column: c.column, keyColumn: c.key_column, queryKey, k, topKeys: nearest.rows.map((r) => r.key) });
  }
  return probes;
}
