// Point-in-time recovery against a real PostgreSQL 15 and filesystem storage: rows committed at
// t1, t2 and t3 (a WAL switch and a pause between each); a restore to a time between t2 and t3
// holds exactly the t1 and t2 rows, "latest" holds t3 too, an LSN and a named restore point stop
// where they should. Each restore is a promoted server that keeps running after the handler
// returns; the suite stops them at the end. The source authenticates with SCRAM only (no trust
// line anywhere), and the restored servers must too: a password role logs in over TCP and the
// unix socket exactly as on the source, and nobody gets in without a password.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestRestore } from '@tidemark/contracts';
import { createFsBackend, type StorageBackend } from '@tidemark/storage';
import { loadKeyRing, type KeyRing } from '@tidemark/pipeline';
import { livePostmaster } from '@tidemark/pg';
import { compactTimestamp } from '@tidemark/agent';
import { freePort } from '@tidemark/testkit';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { RESTORE_MARKER } from '../src/restore/data-directory.js';
import { WAL_FETCH_FILES } from '../src/restore/wal-server.js';
import { completedEvent, labelsAt, pitrDeps, restoreContext, sleep, startPitrSource, stopRestoredServers, type PitrSource } from './pitr-fixture.js';
import { settling } from '@tidemark/testkit';
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

const KEY_HEX = '5a'.repeat(32);
const READER_PASSWORD = 'reader-secret-1';

/** Logs in as `user` and reads the labels, or returns the server's refusal. */
async function login(host: string, port: number, user: string, password: string | undefined): Promise<string[] | { refused: string }> {
  const client = new pg.Client({ host, port, user, database: 'app', ...(password === undefined ? {} : { password }), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.query<{ label: string }>('SELECT label FROM moments ORDER BY id')).rows.map((r) => r.label);
  } catch (error) {
    return { refused: (error as Error).message };
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('point-in-time restore (real PostgreSQL, fs storage)', () => {
  let source: PitrSource;
  let backend: StorageBackend;
  let storeRoot: string;
  let keys: KeyRing;
  const restored = new Set<string>();
  let between: string;
  let lsnAfterT2: string;
  let t2CommittedAt: Date;
  const rtos: Record<string, unknown> = {};

  beforeAll(async () => {
    keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: KEY_HEX });
    storeRoot = await mkdtemp(join(tmpdir(), 'tidemark-pitr-store-'));
    backend = await createFsBackend({ root: storeRoot });
    source = await startPitrSource(backend);
    await source.server.query('CREATE TABLE moments (id serial PRIMARY KEY, label text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())', [], 'app');
    await source.server.query(`CREATE ROLE reader LOGIN PASSWORD '${READER_PASSWORD}'`);
    await source.server.query('GRANT SELECT ON moments TO reader', [], 'app');
    await source.takeBaseBackup('base-1', keys.current);
    await source.archiveWal(keys.current);

    await source.server.query(`INSERT INTO moments (label) VALUES ('t1')`, [], 'app');
    await source.archiveWal(keys.current);
    await sleep(1100);
    const [t2] = await source.server.query<{ at: Date }>(`INSERT INTO moments (label) VALUES ('t2') RETURNING clock_timestamp() AS at`, [], 'app');
    t2CommittedAt = t2!.at;
    const [position] = await source.server.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    lsnAfterT2 = position!.lsn;
    await source.server.query(`SELECT pg_create_restore_point('before_t3')`);
    await sleep(500);
    // PostgreSQL's own text, to the microsecond ("2026-01-01 10:00:00.123456+00"), as an operator copies it.
    const [now] = await source.server.query<{ now: string }>('SELECT clock_timestamp()::text AS now');
    between = now!.now;
    await sleep(600);
    await source.server.query(`INSERT INTO moments (label) VALUES ('t3')`, [], 'app');
    await source.archiveWal(keys.current);
  });

  afterAll(async () => {
    await stopRestoredServers(restored);
    if (source) await source.stop();
    await backend?.close();
    if (storeRoot) await rm(storeRoot, { recursive: true, force: true });
    console.log(`RTO splits: ${JSON.stringify(rtos)}`);
  });

  async function restore(name: string, request: Record<string, unknown>, ctx = restoreContext(), restoreListenAddress?: string) {
    const base = pitrDeps(source, backend, keys);
    const deps = restoreListenAddress === undefined ? base : { ...base, config: { ...base.config, pg: { ...base.config.pg, restoreListenAddress } } };
    const outcome = await handleRestoreRequested(RequestRestore.parse({ requestId: name, ...request }), deps, ctx);
    const published = deps.publisher.published;
    const done = published.find((p) => p.subject === 'restore.completed.pg.main');
    if (done) restored.add(done.event.dataDirectory as string);
    return { outcome, publisher: deps.publisher };
  }

  it('restores to a time between t2 and t3: exactly the t1 and t2 rows, on a new timeline, holding no reference to the agent', async () => {
    const { outcome, publisher } = await restore('pitr-time', { pointInTime: { time: between } });
    const event = completedEvent(publisher);
    expect(outcome).toEqual({ type: 'ack' });
    expect(publisher.subjects()).toEqual(['restore.started.pg.main', 'restore.completed.pg.main']);
    expect(await labelsAt(event.port!, source)).toEqual(['t1', 't2']);

    const dir = event.dataDirectory!;
    expect(dir.startsWith(join(source.workDir, 'restores', 'main-'))).toBe(true);
    expect(event.database).toBe(dir);
    expect(event.recoveredTo?.timeline).toBe(2);
    expect(Date.parse(event.recoveredTo!.lastTransactionAt!)).toBeCloseTo(t2CommittedAt.getTime(), -3);
    expect(event.rto).toMatchObject({ downloadMs: expect.any(Number), replayMs: expect.any(Number), startMs: expect.any(Number), totalMs: expect.any(Number) });
    expect(event.rto!.walFilesFetched).toBeGreaterThan(0);
    expect(event.rto!.totalMs).toBeGreaterThanOrEqual(event.rto!.downloadMs + event.rto!.replayMs);
    expect(event.checks?.every((check) => check.ok)).toBe(true);
    expect(event.checks?.find((check) => check.name === 'database app')?.actual).toEqual({ 'public.moments': 2 });
    rtos['time'] = event.rto;

    const conf = await readFile(join(dir, 'postgresql.conf'), 'utf8');
    expect(conf).not.toMatch(/^restore_command/m);
    expect(between).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00$/);
    expect(conf).toContain(`recovery_target_time = '${between.replace(/\.(\d+)\+00$/, (_, f: string) => `.${f.padEnd(6, '0')}+00`)}'`);
    for (const file of Object.values(WAL_FETCH_FILES)) expect(existsSync(join(dir, file))).toBe(false);
    expect(existsSync(join(dir, RESTORE_MARKER))).toBe(false);
    expect(existsSync(join(dir, 'postgresql.conf.source'))).toBe(true);
    expect(await livePostmaster(dir)).toBeGreaterThan(0);
  });

  it("keeps the source's authentication: a SCRAM password role logs in over TCP and the socket, nobody without a password", async () => {
    const { publisher } = await restore('pitr-auth', { pointInTime: { latest: true } });
    const event = completedEvent(publisher);
    const dir = event.dataDirectory!;
    expect(event).toMatchObject({ host: '127.0.0.1', socketDirectory: `${dir}.socket`, connectAs: { user: 'postgres', database: 'app' } });
    expect(existsSync(join(event.binDirectory!, 'pg_ctl'))).toBe(true);

    // The source's pg_hba.conf, byte for byte (the agent's own line is gone), and it has no trust line.
    const sourceHba = await readFile(join(source.server.dataDir, 'pg_hba.conf'), 'utf8');
    expect(await readFile(join(dir, 'pg_hba.conf'), 'utf8')).toBe(sourceHba);
    expect(sourceHba.split('\n').filter((line) => /^\s*(local|host)/.test(line) && /\btrust\b/.test(line))).toEqual([]);

    expect(await login('127.0.0.1', event.port!, 'reader', READER_PASSWORD)).toEqual(['t1', 't2', 't3']);
    expect(await login(event.socketDirectory!, event.port!, 'reader', READER_PASSWORD)).toEqual(['t1', 't2', 't3']);
    expect(await login('127.0.0.1', event.port!, 'reader', 'wrong')).toEqual({ refused: expect.stringMatching(/password authentication failed/) });
    // Without a password: refused over TCP and over the socket, for the superuser too.
    for (const host of ['127.0.0.1', event.socketDirectory!]) {
      for (const user of ['reader', 'postgres']) expect(await login(host, event.port!, user, undefined)).toHaveProperty('refused');
    }
    // The socket directory is open like a normal one; the data directory stays the server's own.
    expect((await stat(event.socketDirectory!)).mode & 0o777).toBe(0o755);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('listens where pg.restoreListenAddress says, and names this host when that is every address', async () => {
    const { publisher } = await restore('pitr-wide', { pointInTime: { latest: true } }, restoreContext(), '*');
    const event = completedEvent(publisher);
    expect(event.host).toBe(hostname());
    expect(await readFile(join(event.dataDirectory!, 'postgresql.conf'), 'utf8')).toMatch(/^listen_addresses = '\*'$/m);
    expect(await login('127.0.0.1', event.port!, 'reader', READER_PASSWORD)).toEqual(['t1', 't2', 't3']);
  });

  it('restores to latest: the t3 row too; a redelivery of the finished command only announces it again', async () => {
    const ctx = restoreContext();
    const { publisher } = await restore('pitr-latest', { pointInTime: { latest: true } }, ctx);
    const event = completedEvent(publisher);
    expect(await labelsAt(event.port!, source)).toEqual(['t1', 't2', 't3']);
    rtos['latest'] = event.rto;

    // The agent died after publishing restore.completed but before acking: the same delivery comes back.
    const pid = await livePostmaster(event.dataDirectory!);
    const again = await restore('pitr-latest', { pointInTime: { latest: true } }, { ...ctx, attempt: 2 });
    expect(again.outcome).toEqual({ type: 'ack' });
    expect(again.publisher.subjects()).toEqual(['restore.completed.pg.main']);
    expect(completedEvent(again.publisher)).toEqual(event);
    expect(await livePostmaster(event.dataDirectory!)).toBe(pid);
    expect(await labelsAt(event.port!, source)).toEqual(['t1', 't2', 't3']);
  });

  it('restores to an LSN over an existing directory on a given port, keeping the old one aside', async () => {
    const into = join(source.root, 'restored-lsn');
    await mkdir(into);
    await writeFile(join(into, 'old-file'), 'the previous data directory');
    const port = await freePort('127.0.0.1');
    const ctx = restoreContext();
    const { publisher } = await restore('pitr-lsn', { pointInTime: { lsn: lsnAfterT2 }, intoDirectory: into, intoPort: port, overwrite: true }, ctx);
    const byLsn = completedEvent(publisher);
    expect(byLsn).toMatchObject({ dataDirectory: into, port, previousDatabaseKeptAs: `${into}.pre_restore_${compactTimestamp(ctx.storedAt)}` });
    expect(await labelsAt(port, source)).toEqual(['t1', 't2']);
    expect(await readFile(join(byLsn.previousDatabaseKeptAs!, 'old-file'), 'utf8')).toBe('the previous data directory');
    expect(existsSync(join(into, 'old-file'))).toBe(false);
    rtos['lsn'] = byLsn.rto;
  });

  it('restores to a named restore point, clearing the leftover of an interrupted attempt of the same command', async () => {
    const ctx = restoreContext();
    const leftover = join(source.workDir, 'restores', `main-${compactTimestamp(ctx.storedAt)}`);
    await mkdir(join(leftover, 'base'), { recursive: true });
    await writeFile(join(leftover, 'base', 'half-extracted'), 'x');
    const byName = completedEvent((await restore('pitr-name', { pointInTime: { restorePoint: 'before_t3' } }, ctx)).publisher);
    expect(byName.dataDirectory).toBe(leftover);
    expect(existsSync(join(leftover, 'base', 'half-extracted'))).toBe(false);
    expect(await labelsAt(byName.port!, source)).toEqual(['t1', 't2']);
    rtos['restorePoint'] = byName.rto;
  });

  it('a restore point the archive does not hold is RECOVERY_TARGET_UNREACHABLE saying it does not exist, and nothing is left behind', async () => {
    const { outcome, publisher } = await restore('pitr-nowhere', { pointInTime: { restorePoint: 'never_created' }, intoDirectory: join(source.root, 'nowhere') });
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.pg.main', event: { error: { code: 'RECOVERY_TARGET_UNREACHABLE' } } });
    const message = (publisher.published.at(-1)!.event.error as { message: string }).message;
    expect(message).toMatch(/^restore point "never_created" does not exist in the archived WAL after the chosen base backup/);
    expect(message).toContain('--to latest');
    expect(message).not.toMatch(/archiving|LOG:|FATAL:|UTC /);
    expect(existsSync(join(source.root, 'nowhere'))).toBe(false);
    expect(existsSync(join(source.root, 'nowhere.socket'))).toBe(false);
  });

  it('a time beyond the end of the archive is RECOVERY_TARGET_UNREACHABLE naming where the archive ends', async () => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const { outcome, publisher } = await restore('pitr-beyond', { pointInTime: { time: later } });
    expect(outcome.type).toBe('term');
    const error = publisher.published.at(-1)!.event.error as { code: string; message: string };
    expect(error.code).toBe('RECOVERY_TARGET_UNREACHABLE');
    expect(error.message).toMatch(/^time \S+ lies beyond the end of the archive: the archived WAL ends at LSN [0-9A-F]+\/[0-9A-F]+, with the last transaction committed at \d{4}-/);
    expect(error.message).not.toMatch(/does not exist|LOG:|FATAL:|UTC /);
  });
});
