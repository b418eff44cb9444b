// Throttling, start time and the write counters behind `changedTables`: units for the parsers,
// and a real PostgreSQL 15 for the priority of pg_basebackup, backup_label's time zone and the
// tables a concurrent writer touches.
import { getPriority } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { startPostgres, type PostgresServer } from '@tidemark/testkit';
import { baseBackupArgs, changedTablesBetween, readWriteCounters, startBaseBackup, startPgBaseBackup, startTimeToIso, watchDatabase } from '../src/index.js';

const PASSWORD_ENV = 'TM_TEST_PG_PASSWORD';

describe('base backup arguments', () => {
  it('passes the rate limit to pg_basebackup in kB/s and streams one tar with WAL and manifest', () => {
    const args = baseBackupArgs({ label: 'l', maxRateKbps: 2048 });
    expect(args).toEqual(expect.arrayContaining(['-D', '-', '-Ft', '-X', 'fetch', '--max-rate=2048k', '--label=l', '--manifest-checksums=CRC32C', '--checkpoint=spread']));
    expect(baseBackupArgs({ label: 'l' }).some((a) => a.startsWith('--max-rate'))).toBe(false);
    expect(baseBackupArgs({ label: 'l', serverCompression: 'none' }).some((a) => a.startsWith('--compress'))).toBe(false);
  });

  it('refuses settings pg_basebackup cannot honour with CONFIG_INVALID and the reason', () => {
    const refused = (options: Parameters<typeof baseBackupArgs>[0]) => {
      try {
        baseBackupArgs(options);
      } catch (error) {
        return error as TidemarkError;
      }
      throw new Error('expected a refusal');
    };
    const compressed = refused({ label: 'l', serverCompression: 'zstd', serverCompressionWorkers: 2 });
    expect(compressed.code).toBe('CONFIG_INVALID');
    expect(compressed.message).toMatch(/cannot inject manifest into a compressed tar file.*serverCompression: none/);
    expect(refused({ label: 'l', maxRateKbps: 16 }).code).toBe('CONFIG_INVALID');
    expect(refused({ label: 'l', nice: 20 }).code).toBe('CONFIG_INVALID');
  });
});

describe('backup_label START TIME', () => {
  it('reads UTC and numeric zones from the text and others through the server time zone', () => {
    expect(startTimeToIso('2026-11-22 10:15:00 UTC')).toBe('2026-11-22T10:15:00.000Z');
    expect(startTimeToIso('2026-11-22 10:15:00 GMT', 'Europe/Berlin')).toBe('2026-11-22T10:15:00.000Z');
    expect(startTimeToIso('2026-11-22 10:15:00 +03')).toBe('2026-11-22T07:15:00.000Z');
    expect(startTimeToIso('2026-11-22 10:15:00 -0330')).toBe('2026-11-22T13:45:00.000Z');
    expect(startTimeToIso('2026-11-22 10:15:00 CET', 'Europe/Berlin')).toBe('2026-11-22T09:15:00.000Z');
    expect(startTimeToIso('2026-07-01 10:15:00 CEST', 'Europe/Berlin')).toBe('2026-07-01T08:15:00.000Z');
    expect(startTimeToIso('2026-07-01 10:15:00 EDT', 'America/New_York')).toBe('2026-07-01T14:15:00.000Z');
  });

  it('gives up (so the agent clock stands in) on what it cannot resolve', () => {
    expect(startTimeToIso('2026-11-22 10:15:00 CET')).toBeUndefined();
    expect(startTimeToIso('2026-11-22 10:15:00 CET', 'No/Such_Zone')).toBeUndefined();
    expect(startTimeToIso('yesterday')).toBeUndefined();
  });
});

describe('changed tables', () => {
  it('lists tables whose state moved, appeared or vanished', () => {
    const before = new Map([['public.a', '1/100/id:23'], ['public.b', '5/101/id:23'], ['public.gone', '0/102/id:23']]);
    const after = new Map([['public.a', '1/100/id:23'], ['public.b', '6/101/id:23'], ['public.new', '0/103/id:23']]);
    expect(changedTablesBetween(before, after)).toEqual(['public.b', 'public.gone', 'public.new']);
    expect(changedTablesBetween(before, before)).toEqual([]);
  });
});

describe('base backups against PostgreSQL', () => {
  let server: PostgresServer;
  let env: NodeJS.ProcessEnv;
  const connection = () => ({ ...server.connection('app'), passwordEnv: PASSWORD_ENV });

  beforeAll(async () => {
    server = await startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '4', log_timezone: 'America/New_York' } });
    env = { ...process.env, [PASSWORD_ENV]: server.password };
    await server.createDatabase('app');
    for (const sql of [
      'CREATE TABLE busy (id serial PRIMARY KEY, v int)',
      'CREATE TABLE quiet (id int PRIMARY KEY)',
      'INSERT INTO quiet SELECT generate_series(1, 100)',
      'CREATE TABLE emptied (id int)',
      'INSERT INTO emptied VALUES (1)',
      'CREATE TABLE widened (id int)',
    ]) await server.query(sql, [], 'app');
    // A session reports its counters within ~10 s of going idle: wait for the setup's, or they
    // would show up as writes during the test.
    for (let i = 0; ; i += 1) {
      const rows = await server.query<{ name: string; n: number }>('SELECT relname AS name, n_tup_ins::int AS n FROM pg_stat_user_tables', [], 'app');
      const inserted = Object.fromEntries(rows.map((r) => [r.name, r.n]));
      if (inserted['quiet'] === 100 && inserted['emptied'] === 1) break;
      if (i > 150) throw new Error(`the setup's statistics were not reported in time: ${JSON.stringify(inserted)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('lowers pg_basebackup\'s priority to the configured nice value and stops it on abort', async () => {
    const controller = new AbortController();
    const session = await startPgBaseBackup(connection(), { label: 'nice', maxRateKbps: 32, nice: 10, signal: controller.signal, env, databaseFacts: false });
    expect(session.pid).toBeGreaterThan(0);
    expect(getPriority(session.pid!)).toBe(10);
    expect(getPriority()).toBe(0);
    const outputError = new Promise((resolve) => session.output.once('error', resolve));
    session.output.resume();
    controller.abort();
    await expect(session.source).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    expect(await outputError).toMatchObject({ code: 'SHUTTING_DOWN' });
    await session.finished;
    expect(() => process.kill(session.pid!, 0)).toThrow();
  });

  it('converts backup_label\'s local START TIME into UTC through the server\'s log_timezone', async () => {
    const session = await startBaseBackup(connection(), { label: 'tz', env });
    session.output.resume();
    const facts = await session.facts;
    expect(facts.startTime).toMatch(/ E[SD]T$/);
    expect(Math.abs(Date.parse(facts.startedAt) - Date.now())).toBeLessThan(30_000);
  });

  it('lists the tables written, truncated, altered or created between the snapshot and the end', async () => {
    const watch = await watchDatabase(connection(), 'app', { tableChecksums: true, env });
    // The facts hold their tables' locks until they are complete, as pg_dump would.
    const facts = await watch.facts;
    let writing = true;
    const writer = (async () => {
      while (writing) await server.query('INSERT INTO busy (v) VALUES (1)', [], 'app');
    })();
    await server.query('TRUNCATE emptied', [], 'app');
    await server.query('ALTER TABLE widened ADD COLUMN extra text', [], 'app');
    await server.query('CREATE TABLE appeared (id int)', [], 'app');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const changed = await watch.changedTables(1_000);
    writing = false;
    await writer;
    expect(changed).toEqual(['public.appeared', 'public.busy', 'public.emptied', 'public.widened']);
    // The facts are those of the snapshot, taken before any of it.
    expect(Object.fromEntries(facts.tables.map((t) => [t.name, t.rows]))).toEqual({ busy: 0, emptied: 1, quiet: 100, widened: 0 });
    expect(watch.progress()).toBeGreaterThan(0);
    await watch.close();
    const counters = await readWriteCounters({ query: (text: string) => server.query(text, [], 'app').then((rows) => ({ rows })) } as never);
    expect([...counters.keys()].sort()).toEqual(['public.appeared', 'public.busy', 'public.emptied', 'public.quiet', 'public.widened']);
  });
});
