// Physical base backups against a real PostgreSQL 15: pg_basebackup streams one tar (with WAL and
// backup_manifest), which extracts into a directory pg_verifybackup accepts, which starts as a
// server with the same data; a flipped byte is caught; the facts describe the source.
import { execFileSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { freePort, startPostgres, type PostgresServer } from '@tidemark/testkit';
import { extractTar, parseLsn, startBaseBackup, startFromBaseBackup, verifyBaseBackup, type BaseBackupFacts } from '../src/index.js';

const PASSWORD_ENV = 'TM_TEST_PG_PASSWORD';

describe('streamed physical base backups', () => {
  let server: PostgresServer;
  let root: string;
  let extracted: string;
  let facts: BaseBackupFacts;
  let bytes = 0;
  let tablePath: string;

  beforeAll(async () => {
    server = await startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '4' } });
    await server.query('CREATE TABLE items (id int PRIMARY KEY, body text)');
    await server.query("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 10000) g");
    const [row] = await server.query<{ path: string }>("SELECT pg_relation_filepath('items') AS path");
    tablePath = row?.path ?? '';
    // The restored server runs as the postgres OS user, which must be able to reach the data dir.
    root = await mkdtemp(join(tmpdir(), 'tidemark-base-'));
    await chmod(root, 0o755);
    extracted = join(root, 'backup');

    const env = { ...process.env, [PASSWORD_ENV]: server.password };
    const session = await startBaseBackup({ ...server.connection(), passwordEnv: PASSWORD_ENV }, { label: 'tidemark-test', env });
    await extractTar(session.output, extracted);
    facts = await session.facts;
    bytes = session.bytesProduced();
  });

  afterAll(async () => {
    await server?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('streams a tar whose extraction pg_verifybackup accepts', async () => {
    expect(bytes).toBeGreaterThan(16 * 1024 * 1024); // at least the WAL segment fetched into pg_wal/
    expect(facts.bytes).toBe(bytes);
    expect(facts.manifestBytes).toBeGreaterThan(0);
    await expect(verifyBaseBackup(extracted)).resolves.toBeUndefined();
  });

  it('reports sane LSNs, the label and the source system identifier', async () => {
    const [source] = await server.query<{ sysid: string; version: string; lsn: string }>(
      "SELECT system_identifier::text AS sysid, current_setting('server_version') AS version, pg_current_wal_lsn()::text AS lsn FROM pg_control_system()",
    );
    expect(facts.systemIdentifier).toBe(source?.sysid);
    expect(facts.serverVersion).toBe(source?.version);
    expect(facts.serverVersionNum).toBeGreaterThanOrEqual(150000);
    expect(facts.label).toBe('tidemark-test');
    expect(facts.startTimeline).toBe(1);
    expect(facts.stopTimeline).toBe(1);
    expect(parseLsn(facts.startLsn)).toBeGreaterThan(0n);
    expect(parseLsn(facts.checkpointLsn)).toBeGreaterThanOrEqual(parseLsn(facts.startLsn));
    expect(parseLsn(facts.stopLsn)).toBeGreaterThan(parseLsn(facts.startLsn));
    expect(parseLsn(facts.stopLsn)).toBeLessThanOrEqual(parseLsn(source?.lsn ?? '0/0'));
    expect(facts.walSegmentSize).toBe(16 * 1024 * 1024);
    expect(facts.pgvectorVersion).toBeNull();
  });

  it('fails with INTEGRITY_CHECKSUM_MISMATCH when a data file byte is flipped', async () => {
    const copy = join(root, 'corrupt');
    await cp(extracted, copy, { recursive: true });
    const file = await open(join(copy, tablePath), 'r+');
    try {
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, 4000);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await file.write(byte, 0, 1, 4000);
    } finally {
      await file.close();
    }
    const failure = await verifyBaseBackup(copy).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TidemarkError);
    expect((failure as TidemarkError).code).toBe('INTEGRITY_CHECKSUM_MISMATCH');
    expect((failure as TidemarkError).message).toContain(tablePath);
  });

  it('starts a promoted server from the extracted backup with the same rows', async () => {
    const copy = join(root, 'started');
    await cp(extracted, copy, { recursive: true });
    const started = await startFromBaseBackup(copy, await freePort('127.0.0.1'), { timeoutMs: 60_000 });
    try {
      const client = new pg.Client({ host: started.socketDir, port: started.port, user: 'postgres', database: 'postgres' });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: string; recovering: boolean }>('SELECT count(*) AS n, pg_is_in_recovery() AS recovering FROM items');
        expect(rows[0]).toEqual({ n: '10000', recovering: false });
        const { rows: ids } = await client.query<{ sysid: string }>('SELECT system_identifier::text AS sysid FROM pg_control_system()');
        expect(ids[0]?.sysid).toBe(facts.systemIdentifier);
      } finally {
        await client.end();
      }
    } finally {
      await started.stop();
    }
  });

  it('aborts a throttled backup: the output errors with SHUTTING_DOWN and facts reject', async () => {
    const controller = new AbortController();
    const env = { ...process.env, [PASSWORD_ENV]: server.password };
    const session = await startBaseBackup({ ...server.connection(), passwordEnv: PASSWORD_ENV }, { label: 'aborted', maxRateKbps: 32, signal: controller.signal, env });
    const outputError = new Promise<unknown>((resolve) => session.output.once('error', resolve));
    session.output.once('data', () => controller.abort());
    session.output.resume();
    expect(((await outputError) as TidemarkError).code).toBe('SHUTTING_DOWN');
    await expect(session.facts).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
  });

  it('refuses truncated tars and entries outside the target directory', async () => {
    const source = join(root, 'tar-source');
    await mkdir(join(source, 'sub'), { recursive: true });
    await writeFile(join(source, 'sub', 'file'), Buffer.alloc(10_000, 7));
    const tar = execFileSync('tar', ['-cf', '-', '-C', source, '.']);
    const whole = await extractTar(Readable.from([tar]), join(root, 'tar-whole'));
    expect(whole).toMatchObject({ files: 1, bytes: 10_000 });
    await expect(extractTar(Readable.from([tar.subarray(0, 3000)]), join(root, 'tar-short'))).rejects.toMatchObject({ code: 'INTEGRITY_TRUNCATED' });
    const evil = execFileSync('tar', ['-cf', '-', '-P', '--transform=s,^.*sub,../escape,', '-C', source, 'sub/file']);
    await expect(extractTar(Readable.from([evil]), join(root, 'tar-evil'))).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
  });
});
