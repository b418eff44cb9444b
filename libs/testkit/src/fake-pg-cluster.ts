// An in-memory PgCluster for handler tests (pg-agent's, and the property suite's): dumps, restores,
// database renames, and failure injection.
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { TidemarkError, type PgSourceFacts } from '@tidemark/contracts';
import type { DumpSession, PgCluster } from '@tidemark/pg';

export const SAMPLE_PG_FACTS: PgSourceFacts = {
  serverVersion: '15.14',
  serverVersionNum: 150014,
  database: 'app',
  databaseSizeBytes: 8_000_000,
  extensions: [{ name: 'plpgsql', version: '1.0' }, { name: 'vector', version: '0.8.0' }],
  tables: [{ schema: 'public', name: 'items', rows: 3, checksum: '3:12345' }],
  vectorProbes: [{ schema: 'public', table: 'items', column: 'embedding', keyColumn: 'id', queryKey: '1', k: 5, topKeys: ['1', '2', '3'] }],
  snapshot: '00000003-00000002-1',
};

export interface FakeCluster extends PgCluster {
  readonly databases: Map<string, Buffer>;
  readonly comments: Map<string, string>;
  dumps: number;
  readonly calls: string[];
  /** Makes the next restore fail with this error. */
  failRestoreWith?: TidemarkError;
  failDumpWith?: TidemarkError;
  unavailable?: boolean;
}

export function fakeCluster(dumpBytes: Buffer = Buffer.from('PGDMP fake custom-format dump '.repeat(1000)), facts: PgSourceFacts = SAMPLE_PG_FACTS): FakeCluster {
  const cluster: FakeCluster = {
    description: 'fake:5432',
    databases: new Map([['app', Buffer.alloc(0)]]),
    comments: new Map(),
    dumps: 0,
    calls: [],
    async startDump(database) {
      if (cluster.unavailable) throw new TidemarkError('SOURCE_UNAVAILABLE', 'fake source is down');
      cluster.dumps++;
      cluster.calls.push(`dump ${database}`);
      const failure = cluster.failDumpWith;
      const output = failure
        ? new Readable({ read() { this.destroy(failure); } })
        : Readable.from([dumpBytes.subarray(0, 1000), dumpBytes.subarray(1000)]);
      const session: DumpSession = {
        output,
        facts: Promise.resolve(facts),
        finished: failure ? Promise.reject(failure) : Promise.resolve(),
        bytesProduced: () => dumpBytes.length,
        abort: () => undefined,
      };
      session.finished.catch(() => undefined);
      return session;
    },
    async databaseExists(database) {
      if (cluster.unavailable) throw new TidemarkError('SANDBOX_UNAVAILABLE', 'fake cluster is down');
      return cluster.databases.has(database);
    },
    async createDatabase(database) {
      if (cluster.unavailable) throw new TidemarkError('SANDBOX_UNAVAILABLE', 'fake cluster is down');
      if (cluster.databases.has(database)) throw new Error(`database ${database} already exists`);
      cluster.calls.push(`create ${database}`);
      cluster.databases.set(database, Buffer.alloc(0));
    },
    async dropDatabase(database) {
      cluster.calls.push(`drop ${database}`);
      cluster.databases.delete(database);
      cluster.comments.delete(database);
    },
    async renameDatabase(from, to) {
      const content = cluster.databases.get(from);
      if (!content) throw new Error(`no database ${from}`);
      cluster.calls.push(`rename ${from} ${to}`);
      cluster.databases.delete(from);
      cluster.databases.set(to, content);
      const comment = cluster.comments.get(from);
      cluster.comments.delete(from);
      if (comment !== undefined) cluster.comments.set(to, comment);
    },
    async databaseComment(database) {
      if (cluster.unavailable) throw new TidemarkError('SANDBOX_UNAVAILABLE', 'fake cluster is down');
      return cluster.comments.get(database);
    },
    async setDatabaseComment(database, comment) {
      if (!cluster.databases.has(database)) throw new Error(`no database ${database}`);
      cluster.comments.set(database, comment);
    },
    async restore(database, input) {
      const bytes = await buffer(input);
      if (cluster.failRestoreWith) throw cluster.failRestoreWith;
      cluster.calls.push(`restore ${database}`);
      cluster.databases.set(database, bytes);
    },
    async collectFacts() {
      return facts;
    },
  };
  return cluster;
}
