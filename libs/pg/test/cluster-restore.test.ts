// pg_restore through pgCluster against a real PostgreSQL 15: whatever goes wrong while feeding
// it ends as one coded error (never a raw stream error), and --verbose steps count as progress.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { readAll } from '@tidemark/storage';
import { reportingBytes } from '@tidemark/runtime';
import { startPostgres, type PostgresServer } from '@tidemark/testkit';
import { pgCluster, type PgCluster } from '../src/index.js';

const PASSWORD_ENV = 'TM_TEST_PG_PASSWORD';

describe('pgCluster.restore', () => {
  let server: PostgresServer;
  let cluster: PgCluster;
  let dump: Buffer;
  let databases = 0;
  const freshDatabase = async (): Promise<string> => {
    const name = `restored_${(databases += 1)}`;
    await cluster.createDatabase(name);
    return name;
  };

  beforeAll(async () => {
    server = await startPostgres();
    await server.createDatabase('source');
    await server.query('CREATE TABLE docs (id int PRIMARY KEY, body text)', [], 'source');
    await server.query("INSERT INTO docs SELECT g, md5(g::text) FROM generate_series(1, 1000) g", [], 'source');
    cluster = pgCluster({ ...server.connection('source'), passwordEnv: PASSWORD_ENV }, 'sandbox', { ...process.env, [PASSWORD_ENV]: server.password });
    const session = await cluster.startDump('source', { tableChecksums: false });
    dump = await readAll(session.output);
    await session.finished;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('restores a dump and reports each step pg_restore starts', async () => {
    const database = await freshDatabase();
    const steps: string[] = [];
    await cluster.restore(database, Readable.from([dump]), { onStep: (step) => steps.push(step) });
    expect(await server.query('SELECT count(*)::int AS n FROM docs', [], database)).toEqual([{ n: 1000 }]);
    expect(steps.some((step) => /creating TABLE "?public"?\.?"?docs/.test(step))).toBe(true);
    expect(steps.some((step) => /processing data for table "public.docs"/.test(step))).toBe(true);
  });

  it('fails with a coded error, not a raw EPIPE, when pg_restore stops reading before the input ends', async () => {
    // pg_restore exits at the archive's end; the bytes after it can no longer be written. Which
    // side notices first varies, so a few rounds; with the input shaped as restoreArtifact feeds it.
    const trailing = Buffer.alloc(8 * 1024 * 1024);
    for (let round = 0; round < 3; round += 1) {
      const database = await freshDatabase();
      const input = reportingBytes(Readable.from([dump, trailing, trailing]), () => undefined);
      const error = await cluster.restore(database, input).then(() => undefined, (caught: unknown) => caught);
      expect(error).toBeInstanceOf(TidemarkError);
      expect(error).toMatchObject({ code: 'RESTORE_FAILED', retryable: false });
    }
  });

  it('reports the input\'s own failure rather than pg_restore\'s complaint about a short archive', async () => {
    const database = await freshDatabase();
    const integrity = new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', 'the stored bytes do not match');
    async function* broken(): AsyncGenerator<Buffer> {
      yield dump.subarray(0, Math.floor(dump.length / 2));
      throw integrity;
    }
    await expect(cluster.restore(database, Readable.from(broken()))).rejects.toBe(integrity);
  });

  it('names pg_restore\'s own complaint, not its verbose steps, when it fails', async () => {
    const database = await freshDatabase();
    await server.query('CREATE TABLE docs (id int)', [], database);
    const error = await cluster.restore(database, Readable.from([dump]), { onStep: () => undefined }).then(() => undefined, (caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'RESTORE_FAILED' });
    expect((error as Error).message).toMatch(/already exists/);
    expect((error as Error).message).not.toMatch(/creating TABLE|processing item/);
  });
});
