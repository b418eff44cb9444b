// A base backup with the facts the verifier needs to prove it at the data level.
//
// A physical backup is consistent at its stop LSN, a moment nobody can open a snapshot at. So the
// data-level facts (row counts, checksums, kNN probes: the logical path's collectFacts) are taken
// in a REPEATABLE READ snapshot opened just before pg_basebackup starts, and every table written
// between that snapshot and the end of the backup is listed in `changedTables`: the verifier
// compares the others exactly and only checks that the changed ones are readable.
//
// "Written" is read from the server's cumulative statistics (pg_stat_user_tables: n_tup_ins +
// n_tup_upd + n_tup_del), plus the table's file node (TRUNCATE, VACUUM FULL, CLUSTER and rewriting
// ALTERs change it) and its column list (ALTER TABLE ADD/DROP COLUMN), before the snapshot and
// again after the backup. Limitation: a backend reports its counters at most once a second after a
// commit, and an idle one within about 10 s (PostgreSQL's PGSTAT_MIN_INTERVAL / PGSTAT_IDLE_INTERVAL;
// up to 60 s under lock contention), and only its own counters can be flushed on demand
// (pg_stat_force_next_flush). We wait `settleMs` (1 s) after the backup before the second read, so
// a table written continuously, or more than ~10 s before the end, is listed; one written only in
// the last seconds by a session that then went idle may not be. Its comparison then fails: a false
// alarm (VERIFY_MISMATCH), never a silent pass.
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { PgBaseSourceFacts, SchemaError, TidemarkError, type Manifest, type PgSourceFacts } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { BASE_BACKUP_FORMAT, startBaseBackup, type BaseBackupOptions } from './base-backup.js';
import { openClient, toPgError } from './connection.js';
import { collectFacts, type Queryable } from './facts.js';

/** Per table ("schema.name"): what changes when the table is written. */
export type WriteCounters = ReadonlyMap<string, string>;

const WRITE_COUNTERS = `
  SELECT n.nspname AS schema, c.relname AS name,
         concat_ws('/',
           coalesce(s.n_tup_ins, 0) + coalesce(s.n_tup_upd, 0) + coalesce(s.n_tup_del, 0),
           pg_relation_filenode(c.oid),
           (SELECT string_agg(a.attname || ':' || a.atttypid::text, ',' ORDER BY a.attnum)
              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)) AS state
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** Reads the write counters; run it outside a transaction, so the statistics are read afresh. */
export async function readWriteCounters(db: Queryable): Promise<WriteCounters> {
  const { rows } = await db.query<{ schema: string; name: string; state: string }>(WRITE_COUNTERS);
  return new Map(rows.map((r) => [`${r.schema}.${r.name}`, r.state]));
}

/** Tables whose counters moved, or which appeared or vanished, sorted. */
export function changedTablesBetween(before: WriteCounters, after: WriteCounters): string[] {
  const changed = new Set<string>();
  for (const [table, state] of before) if (after.get(table) !== state) changed.add(table);
  for (const table of after.keys()) if (!before.has(table)) changed.add(table);
  return [...changed].sort();
}

export interface DatabaseWatchOptions {
  readonly tableChecksums: boolean;
  readonly probeK?: number | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
}

export interface DatabaseWatch {
  /** The database's facts in the snapshot opened at start (computed while the backup runs). */
  readonly facts: Promise<PgSourceFacts>;
  /** Statements the facts collection has completed (progress for heartbeats). */
  progress(): number;
  /** After the backup: waits `settleMs`, reads the counters again and lists the tables written since the start. */
  changedTables(settleMs: number, signal?: AbortSignal): Promise<string[]>;
  /** Ends the snapshot's session (a running facts query is rolled back). Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Reads the write counters, then opens a REPEATABLE READ snapshot of `database` and starts
 * collecting its facts in it. Resolves once the snapshot is taken: start the backup after that.
 */
export async function watchDatabase(conn: PostgresConnection, database: string, options: DatabaseWatchOptions): Promise<DatabaseWatch> {
  const env = options.env ?? process.env;
  const what = `collecting facts of ${database}`;
  const client = await openClient(conn, database, 'source', env);
  let closing: Promise<void> | undefined;
  // Ending the session without COMMIT rolls back a running facts query at once.
  const close = () => (closing ??= client.end().catch(() => undefined));
  let before: WriteCounters;
  try {
    // Counters first, the snapshot second: a write in between is in the snapshot and counted as a
    // change (harmless); the other order could miss one.
    before = await readWriteCounters(client);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    // REPEATABLE READ takes its snapshot at the first statement.
    await client.query('SELECT 1');
  } catch (error) {
    await close();
    throw toPgError(error, 'source', `opening a snapshot of ${database}`);
  }
  let statements = 0;
  const counted: Queryable = {
    query: async <R extends Record<string, unknown>>(text: string, values?: unknown[]) => {
      const result = await (client as pg.Client).query<R>(text, values);
      statements += 1;
      return result;
    },
  };
  const facts = (async () => {
    try {
      const collected = await collectFacts(counted, { tableChecksums: options.tableChecksums, ...(options.probeK !== undefined ? { probeK: options.probeK } : {}) });
      await client.query('COMMIT');
      return collected;
    } catch (error) {
      throw toPgError(error, 'source', what);
    } finally {
      await close();
    }
  })();
  facts.catch(() => undefined);

  return {
    facts,
    progress: () => statements,
    async changedTables(settleMs, signal) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, settleMs);
        function done() {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        signal?.addEventListener('abort', done, { once: true });
      });
      if (signal?.aborted) throw new TidemarkError('SHUTTING_DOWN', 'the base backup was interrupted by shutdown; another agent will retry it');
      const reader = await openClient(conn, database, 'source', env);
      try {
        return changedTablesBetween(before, await readWriteCounters(reader));
      } catch (error) {
        throw toPgError(error, 'source', `reading the write counters of ${database}`);
      } finally {
        await reader.end().catch(() => undefined);
      }
    },
    close,
  };
}

// ---------------------------------------------------------------------------------------------

export interface PgBaseBackupOptions extends BaseBackupOptions {
  /** Data-level facts of the connection's database; false skips them (no data-level verification). */
  readonly databaseFacts: { readonly tableChecksums: boolean; readonly probeK?: number } | false;
  /** How long to wait after the backup before reading the write counters again; 1 s by default. */
  readonly settleMs?: number;
}

export interface PgBaseBackupSession {
  /** The tar stream (see BaseBackupSession.output). */
  readonly output: Readable;
  /** The manifest's `source`, once the backup and the facts are complete. */
  readonly source: Promise<PgBaseSourceFacts>;
  readonly pid: number | undefined;
  bytesProduced(): number;
  /** Bytes produced plus facts statements completed: grows while anything makes progress. */
  progress(): number;
  abort(reason: TidemarkError): void;
  /** Resolves (never rejects) once pg_basebackup is gone and the snapshot's session is closed. */
  readonly finished: Promise<void>;
}

export const DEFAULT_SETTLE_MS = 1_000;

/** A base backup of `conn`'s cluster with the facts of `conn.database` for the verifier. */
export async function startPgBaseBackup(conn: PostgresConnection, options: PgBaseBackupOptions): Promise<PgBaseBackupSession> {
  const clock = options.clock ?? (() => new Date());
  const watch = options.databaseFacts === false ? undefined : await watchDatabase(conn, conn.database, { ...options.databaseFacts, env: options.env });
  let session;
  try {
    session = await startBaseBackup(conn, options);
  } catch (error) {
    await watch?.close();
    throw error;
  }
  const backup = session;
  const abort = (reason: TidemarkError) => {
    backup.abort(reason);
    void watch?.close();
  };
  // A failed facts query fails the backup at once, as in the logical path.
  watch?.facts.catch((error: unknown) => abort(error instanceof TidemarkError ? error : new TidemarkError('INTERNAL', String(error))));

  const source = (async (): Promise<PgBaseSourceFacts> => {
    try {
      const facts = await backup.facts;
      const stoppedAt = clock().toISOString();
      const [database, changedTables] = watch ? await Promise.all([watch.facts, watch.changedTables(options.settleMs ?? DEFAULT_SETTLE_MS, options.signal)]) : [undefined, undefined];
      const candidate: PgBaseSourceFacts = {
        label: facts.label,
        startLsn: facts.startLsn,
        checkpointLsn: facts.checkpointLsn,
        stopLsn: facts.stopLsn,
        startTimeline: facts.startTimeline,
        stopTimeline: facts.stopTimeline,
        startedAt: facts.startedAt,
        stoppedAt,
        serverVersion: facts.serverVersion,
        serverVersionNum: facts.serverVersionNum,
        systemIdentifier: facts.systemIdentifier,
        walSegmentSize: facts.walSegmentSize,
        pgvectorVersion: facts.pgvectorVersion,
        backupManifest: { bytes: facts.manifestBytes, sha256: facts.manifestSha256 },
        ...(options.maxRateKbps !== undefined ? { maxRateKbps: options.maxRateKbps } : {}),
        ...(database ? { database, changedTables: changedTables ?? [] } : {}),
      };
      try {
        return PgBaseSourceFacts.parse(candidate);
      } catch (error) {
        if (error instanceof SchemaError) throw new TidemarkError('INTERNAL', `the base backup facts do not match their schema: ${error.message}`, { cause: error });
        throw error;
      }
    } finally {
      await watch?.close();
    }
  })();
  source.catch(() => undefined);
  const finished = source.then(
    () => undefined,
    async () => {
      await backup.facts.catch(() => undefined);
      await watch?.close();
    },
  );

  return {
    output: backup.output,
    source,
    pid: backup.pid,
    bytesProduced: () => backup.bytesProduced(),
    progress: () => backup.bytesProduced() + (watch?.progress() ?? 0),
    abort,
    finished,
  };
}

/**
 * A base backup manifest's facts, validated: a manifest of another format, or without valid facts,
 * can be neither restored nor verified (INTEGRITY_FORMAT).
 */
export function baseFactsOf(manifest: Pick<Manifest, 'id' | 'format' | 'source'>): PgBaseSourceFacts {
  if (manifest.format !== BASE_BACKUP_FORMAT) {
    throw new TidemarkError('INTEGRITY_FORMAT', `artifact ${manifest.id} has format ${JSON.stringify(manifest.format)}, not ${BASE_BACKUP_FORMAT}: it is no base backup, so nothing can start from it`);
  }
  try {
    return PgBaseSourceFacts.parse(manifest.source, 'source');
  } catch (error) {
    if (error instanceof SchemaError) {
      throw new TidemarkError('INTEGRITY_FORMAT', `the manifest of base backup ${manifest.id} has no valid base backup facts (${error.message}); it can be neither restored nor verified, use another one`, { cause: error });
    }
    throw error;
  }
}
