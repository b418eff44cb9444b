// The PostgreSQL port of the handlers: one cluster (a source or the verification sandbox) and the
// operations the backup, restore and verify paths need. `pgCluster` is the real adapter over the
// pg driver and the pg tools; tests of the handlers use a small in-memory fake.
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { TidemarkError, type PgSourceFacts } from '@tidemark/contracts';
import { settleFirstCause } from '@tidemark/pipeline';
import { libpqEnv, type PostgresConnection } from '@tidemark/config';
import { openClient, quoteIdent, toPgError, type ClusterRole } from './connection.js';
import { collectFacts } from './facts.js';
import { describeExit, guardToolOutput, spawnTool, toolEnvironment, type RunningTool } from './tools.js';

export interface DumpOptions {
  readonly tableChecksums: boolean;
  /** Aborting kills pg_dump; the output stream then errors with SHUTTING_DOWN. */
  readonly signal?: AbortSignal;
}

export interface DumpSession {
  /** pg_dump's custom-format output. Errors with DUMP_FAILED when pg_dump fails. */
  readonly output: Readable;
  /** Facts taken in the dump's own snapshot. */
  readonly facts: Promise<PgSourceFacts>;
  /** Resolves once pg_dump has exited successfully and the snapshot transaction is closed. */
  readonly finished: Promise<void>;
  /** Bytes pg_dump has produced so far (for progress and heartbeats). */
  bytesProduced(): number;
  /** Stops pg_dump and closes the transaction. */
  abort(reason: TidemarkError): void;
}

export interface RestoreOptions {
  /** Aborting kills pg_restore; the restore then fails with SHUTTING_DOWN. */
  readonly signal?: AbortSignal;
  /**
   * Told each step pg_restore starts (--verbose: "creating TABLE public.docs"): progress while it
   * works on what it has read, when no more input moves (a long index build prints nothing, though).
   */
  readonly onStep?: (step: string) => void;
}

export interface PgCluster {
  /** host:port, for logs. */
  readonly description: string;
  /** Starts a consistent logical dump of `database` (snapshot, pg_dump, facts). */
  startDump(database: string, options: DumpOptions): Promise<DumpSession>;
  databaseExists(database: string): Promise<boolean>;
  /** Creates an empty database from template0 (so the dump's CREATE EXTENSION cannot clash). */
  createDatabase(database: string): Promise<void>;
  /** Drops a database if it exists, ending its sessions first. */
  dropDatabase(database: string): Promise<void>;
  /** Renames a database, ending its sessions first. */
  renameDatabase(from: string, to: string): Promise<void>;
  /** The database's comment (COMMENT ON DATABASE; it follows a rename), undefined when it has none or does not exist. */
  databaseComment(database: string): Promise<string | undefined>;
  setDatabaseComment(database: string, comment: string): Promise<void>;
  /** Runs pg_restore into `database`, reading a custom-format dump from `input`. */
  restore(database: string, input: Readable, options?: RestoreOptions): Promise<void>;
  collectFacts(database: string, options: { tableChecksums: boolean; probeK?: number }): Promise<PgSourceFacts>;
}

// pg_restore --verbose announces each step on stderr as "pg_restore: <step>"; its complaints are
// "pg_restore: error: …", "pg_restore: warning: …" and their detail lines.
const VERBOSE_STEP = /^pg_restore: (?!error:|warning:|detail:|hint:)(.+)$/;

function reportSteps(tool: RunningTool, onStep: (step: string) => void): void {
  let partial = '';
  tool.child.stderr?.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const step = VERBOSE_STEP.exec(line)?.[1];
      if (step !== undefined) onStep(step);
    }
  });
}

/** pg_restore's last complaint, without the steps --verbose wrote before it. */
const complaintOf = (tool: RunningTool, verbose: boolean): string =>
  verbose ? tool.stderrTail(60).split('\n').filter((line) => !VERBOSE_STEP.test(line)).slice(-5).join('\n') : tool.stderrTail();

/** PostgreSQL truncates names to 63 bytes; derived names are cut explicitly so we know them. */
export function derivedDatabaseName(base: string, suffix: string): string {
  const room = 63 - Buffer.byteLength(suffix);
  let head = base;
  while (Buffer.byteLength(head) > room) head = head.slice(0, -1);
  return `${head}${suffix}`;
}

export function pgCluster(conn: PostgresConnection, role: ClusterRole, env: NodeJS.ProcessEnv = process.env): PgCluster {
  const description = `${conn.host}:${conn.port}`;
  // Administrative statements cannot run inside the database they change.
  const adminDatabaseFor = (subject: string) => (subject !== conn.database ? conn.database : subject === 'postgres' ? 'template1' : 'postgres');

  async function withClient<T>(database: string, what: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await openClient(conn, database, role, env);
    try {
      return await work(client);
    } catch (error) {
      throw toPgError(error, role, what);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  const terminateSessions = (client: pg.Client, database: string) =>
    client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);

  const toolEnv = (database: string) => toolEnvironment({ ...libpqEnv(conn, env), PGDATABASE: database }, env);

  return {
    description,

    async startDump(database, options) {
      const client = await openClient(conn, database, role, env);
      // Ends the snapshot's session once. Ending without COMMIT aborts a running facts query at
      // once (the server rolls back); a ROLLBACK statement would queue behind it.
      let ended: Promise<void> | undefined;
      const close = (commit: boolean): Promise<void> =>
        (ended ??= (async () => {
          if (commit) await client.query('COMMIT').catch(() => undefined);
          await client.end().catch(() => undefined);
        })());
      let snapshot: string;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        const exported = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
        snapshot = exported.rows[0]?.snapshot ?? '';
      } catch (error) {
        await close(false);
        throw toPgError(error, role, `opening a snapshot of ${database}`);
      }

      const tool = spawnTool('pg_dump', ['--format=custom', '--compress=0', `--snapshot=${snapshot}`, '--no-password', `--dbname=${database}`], toolEnv(database), { stdin: false, stdout: true }, env);
      let produced = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          produced += chunk.length;
          done(null, chunk);
        },
      });
      const guarded = guardToolOutput(tool, [counter], {
        signal: options.signal,
        aborted: () => new TidemarkError('SHUTTING_DOWN', 'the backup was interrupted by shutdown; another agent will retry it'),
        onFail: () => void close(false),
      });

      // Facts in the same transaction, so they describe exactly the snapshot pg_dump reads.
      const facts = collectFacts(client, { tableChecksums: options.tableChecksums, snapshot }).catch((error: unknown) => {
        const converted = toPgError(error, role, `collecting facts of ${database}`);
        guarded.fail(converted);
        // After an earlier failure the facts query fails because that one closed its session.
        throw guarded.failure ?? converted;
      });
      facts.catch(() => undefined);

      const finished = (async () => {
        const { exit, pipeError } = await guarded.settled;
        await facts.catch(() => undefined);
        // Precedence: an abort or a facts failure (already recorded), then a broken pipe (which
        // killed pg_dump, so its exit says nothing), then pg_dump's own failure.
        if (pipeError !== undefined) {
          guarded.fail(pipeError instanceof TidemarkError ? pipeError : new TidemarkError('DUMP_FAILED', `reading pg_dump output failed: ${(pipeError as Error).message}`, { cause: pipeError }));
        }
        if (exit.code !== 0 || tool.reportedError) {
          guarded.fail(new TidemarkError('DUMP_FAILED', `${describeExit('pg_dump', exit, tool.stderrTail())}; check the source and the agent's pg_dump version`));
        }
        await close(true);
        if (guarded.failure) throw guarded.failure;
        guarded.end();
      })();
      finished.catch(() => undefined);

      return {
        output: guarded.output,
        facts,
        finished,
        bytesProduced: () => produced,
        abort: (reason) => guarded.fail(reason),
      };
    },

    databaseExists: (database) =>
      withClient(adminDatabaseFor(database), `looking up database ${database}`, async (client) => {
        const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
        return found.rows.length > 0;
      }),

    createDatabase: (database) =>
      withClient(adminDatabaseFor(database), `creating database ${database}`, async (client) => {
        await client.query(`CREATE DATABASE ${quoteIdent(database)} TEMPLATE template0`);
      }),

    dropDatabase: (database) =>
      withClient(adminDatabaseFor(database), `dropping database ${database}`, async (client) => {
        await client.query(`ALTER DATABASE ${quoteIdent(database)} ALLOW_CONNECTIONS false`).catch(() => undefined);
        await terminateSessions(client, database);
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`);
      }),

    renameDatabase: (from, to) =>
      withClient(adminDatabaseFor(from === conn.database || to === conn.database ? conn.database : from), `renaming database ${from} to ${to}`, async (client) => {
        // Refuse new sessions while we end the current ones, or one could sneak in between.
        await client.query(`ALTER DATABASE ${quoteIdent(from)} ALLOW_CONNECTIONS false`);
        try {
          await terminateSessions(client, from);
          await client.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
        } finally {
          const current = (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [to])).rows.length > 0 ? to : from;
          await client.query(`ALTER DATABASE ${quoteIdent(current)} ALLOW_CONNECTIONS true`);
        }
      }),

    databaseComment: (database) =>
      withClient(adminDatabaseFor(database), `reading the comment of database ${database}`, async (client) => {
        const found = await client.query<{ comment: string | null }>("SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", [database]);
        return found.rows[0]?.comment ?? undefined;
      }),

    setDatabaseComment: (database, comment) =>
      withClient(adminDatabaseFor(database), `commenting on database ${database}`, async (client) => {
        await client.query(`COMMENT ON DATABASE ${quoteIdent(database)} IS ${client.escapeLiteral(comment)}`);
      }),

    async restore(database, input, options = {}) {
      const args = ['--exit-on-error', '--no-owner', '--no-privileges', '--no-password', ...(options.onStep ? ['--verbose'] : []), `--dbname=${database}`];
      const tool = spawnTool('pg_restore', args, toolEnv(database), { stdin: true, stdout: false }, env);
      if (options.onStep) reportSteps(tool, options.onStep);
      const onAbort = () => tool.kill();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const ran = tool.exited.then((exit) => {
        if (options.signal?.aborted) throw new TidemarkError('SHUTTING_DOWN', `the restore into ${database} was interrupted by shutdown`);
        if (exit.code !== 0) throw new TidemarkError('RESTORE_FAILED', `${describeExit('pg_restore', exit, complaintOf(tool, options.onStep !== undefined))}; the database ${database} was not restored`);
      });
      // The input's own failure (an integrity error from decoding) comes first and explains more
      // than pg_restore's complaint about a short file; a broken pipe is only the other side dying.
      const fed = pipeline(input, tool.child.stdin as NodeJS.WritableStream).catch((error: unknown) => {
        throw error instanceof TidemarkError ? error : new TidemarkError('RESTORE_FAILED', `feeding pg_restore failed: ${(error as Error).message}; the database ${database} may be incomplete`, { cause: error });
      });
      try {
        await settleFirstCause([fed, ran], () => tool.kill());
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    },

    collectFacts: (database, options) =>
      withClient(database, `collecting facts of ${database}`, async (client) => {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        try {
          return await collectFacts(client, options);
        } finally {
          await client.query('ROLLBACK').catch(() => undefined);
        }
      }),
  };
}
