// A failover while archiving: the archive follows the promoted standby onto its new timeline.
// pg_receivewal finishes the old timeline's segment without renaming it (it is incomplete), so
// the spool would keep that .partial forever: it must be archived up to the switch point and
// removed, the history file archived, and the new timeline's segments archived from there on.
// Real PostgreSQL 15 primary and streaming standby, real fs storage.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalFileManifest } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { findGaps, isSegmentName, osUserIds, parseLsn, segmentNameForLsn } from '@tidemark/pg';
import { keyRingOf } from '@tidemark/pipeline';
import { createFsBackend, openDecoded, WalArchive, type StorageBackend } from '@tidemark/storage';
import {
  eventually, freePort, makeTempDir, POSTGRES_BIN_DIR, postgresClient, recordingPublisher, removeTempDir, runProcess, startPostgres, startProcess, type PostgresServer,
  type StartedProcess,
} from '@tidemark/testkit';
import { parseHistory } from '../src/wal/segment-file.js';
import { realServerArchiver } from './wal-fixture.js';

const PRIMARY_PASSWORD_ENV = 'TM_WAL_TL_PRIMARY_PGPASSWORD';
const STANDBY_PASSWORD_ENV = 'TM_WAL_TL_STANDBY_PGPASSWORD';
const keys = keyRingOf(undefined);

describe('wal archiving across a failover (real primary and standby)', () => {
  let primary: PostgresServer;
  let standby: StartedProcess | undefined;
  let standbyRoot: string;
  let root: string;
  let backend: StorageBackend;
  let archive: WalArchive;
  const logs: string[] = [];
  const logger = {
    debug: () => undefined,
    info: (d: object, m: string) => logs.push(`info ${m} ${JSON.stringify(d)}`),
    warn: (d: object, m: string) => logs.push(`warn ${m} ${JSON.stringify(d)}`),
    error: (d: object, m: string) => logs.push(`error ${m} ${JSON.stringify(d)}`),
  };

  beforeAll(async () => {
    primary = await startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '6', max_replication_slots: '4' } });
    process.env[PRIMARY_PASSWORD_ENV] = primary.password;
    process.env[STANDBY_PASSWORD_ENV] = primary.password; // the standby is a copy: same superuser password
    root = await makeTempDir('tidemark-wal-tl-');
    await chmod(root, 0o711);
    backend = await createFsBackend({ root: join(root, 'storage') });
    archive = new WalArchive(backend);
    standbyRoot = await makeTempDir('tidemark-wal-standby-');
  });

  afterAll(async () => {
    await standby?.stop({ signal: 'SIGINT', timeoutMs: 10_000 });
    await primary?.stop();
    await backend?.close();
    if (root) await removeTempDir(root);
    if (standbyRoot) await removeTempDir(standbyRoot);
    delete process.env[PRIMARY_PASSWORD_ENV];
    delete process.env[STANDBY_PASSWORD_ENV];
    if (process.env['TM_WAL_TEST_DEBUG']) console.log(logs.join('\n'));
  });

  it('archives the old timeline up to the switch point and follows the new one', async () => {
    const owner = (await osUserIds('postgres'))!;
    const spool = join(root, 'wal', 'main');
    const archiverFor = (conn: PostgresConnection, published = recordingPublisher()) =>
      realServerArchiver(conn, { spoolDir: spool, encode: { compression: 'zstd' }, keys, archive, publisher: published, logger }, { receiverRestartDelayMs: { initial: 100, max: 500 } });

    // --- timeline 1 on the primary, with a streaming standby ------------------------------------
    await primary.query('CREATE TABLE filler (id int, body text)');
    const [sys] = await primary.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    const systemIdentifier = (sys as { id: string }).id;
    const before = archiverFor({ ...primary.connection(), passwordEnv: PRIMARY_PASSWORD_ENV } as PostgresConnection);
    before.start();
    await eventually(() => before.status().state === 'running', 30_000, 'archiving of the primary');

    await chown(standbyRoot, owner.uid, owner.gid);
    const dataDir = join(standbyRoot, 'data');
    const socketDir = join(standbyRoot, 'socket');
    await mkdir(socketDir, { mode: 0o700 });
    await chown(socketDir, owner.uid, owner.gid);
    const env = { PATH: process.env['PATH'] ?? '', LC_ALL: 'C', TZ: 'UTC', PGPASSWORD: primary.password };
    await runProcess(join(POSTGRES_BIN_DIR, 'pg_basebackup'), ['-D', dataDir, '-R', '-X', 'stream', '--no-sync', '-h', primary.host, '-p', String(primary.port), '-U', primary.user], { ...owner, env, timeoutMs: 60_000 });
    const standbyPort = await freePort('127.0.0.1');
    standby = startProcess(join(POSTGRES_BIN_DIR, 'postgres'), ['-D', dataDir, '-p', String(standbyPort), '-k', socketDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=50'], {
      ...owner,
      env: { PATH: env.PATH, LC_ALL: 'C', TZ: 'UTC' },
      name: 'standby',
    });
    await standby.waitForOutput(/ready to accept read-only connections/, 60_000);
    const standbyClient = postgresClient(() => ({ host: '127.0.0.1', port: standbyPort }), primary.user, primary.password);

    for (let i = 0; i < 2; i += 1) {
      await primary.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
      await primary.query('SELECT pg_switch_wal()');
    }
    await primary.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 500) g'); // into the open segment
    const [current] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const primaryEnd = parseLsn((current as { lsn: string }).lsn);
    await eventually(async () => {
      const [row] = await standbyClient.query<{ lsn: string }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
      return parseLsn((row as { lsn: string }).lsn) >= primaryEnd;
    }, 30_000, 'the standby to replay everything');
    const openSegment = segmentNameForLsn(1, primaryEnd);

    // --- failover: the primary goes away, the standby is promoted to timeline 2 -----------------
    await primary.stop();
    await before.stop();
    expect((await readdir(spool)).filter((n) => n.endsWith('.partial'))).toEqual([`${openSegment}.partial`]);
    await standbyClient.query('SELECT pg_promote(true, 60)');
    const historyText = await readFile(join(dataDir, 'pg_wal', '00000002.history'), 'utf8');
    const switchPoint = parseHistory(historyText).get(1) as bigint;
    expect(switchPoint).toBeGreaterThanOrEqual(primaryEnd);

    const published = recordingPublisher();
    const after = archiverFor({ host: '127.0.0.1', port: standbyPort, user: primary.user, database: 'postgres', passwordEnv: STANDBY_PASSWORD_ENV } as PostgresConnection, published);
    after.start();
    try {
      await eventually(async () => {
        const names = (await archive.list('main', systemIdentifier)).map((f) => f.file);
        return names.includes('00000002.history') && !(await readdir(spool)).includes(`${openSegment}.partial`);
      }, 30_000, 'the history file and the new timeline');
      // The old timeline's last segment: archived up to the switch point, gone from the spool.
      const oldPartial = (await archive.readManifest('main', systemIdentifier, `${openSegment}.partial`)) as WalFileManifest;
      expect(oldPartial).toMatchObject({ fileKind: 'partial', timeline: 1 });
      expect(parseLsn(oldPartial.endLsn as string)).toBe(switchPoint);
      const history = (await archive.readManifest('main', systemIdentifier, '00000002.history')) as WalFileManifest;
      const stored = await openDecoded(archive, history, keys);
      const chunks: Buffer[] = [];
      for await (const chunk of stored) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString('utf8')).toBe(historyText);

      // Timeline 2 goes on from the same segment number.
      await standbyClient.query(`INSERT INTO filler VALUES (1, '${randomBytes(8).toString('hex')}')`);
      const [row] = await standbyClient.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      const newSegment = (row as { name: string }).name;
      expect(newSegment.slice(0, 8)).toBe('00000002');
      const serverSha = createHash('sha256').update(await readFile(join(dataDir, 'pg_wal', newSegment))).digest('hex');
      await eventually(async () => (await archive.list('main', systemIdentifier)).some((f) => f.file === newSegment), 30_000, `segment ${newSegment}`);
      const manifest = (await archive.readManifest('main', systemIdentifier, newSegment)) as WalFileManifest;
      const decoded = await openDecoded(archive, manifest, keys);
      const hash = createHash('sha256');
      for await (const chunk of decoded) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(serverSha);

      const names = (await archive.list('main', systemIdentifier)).map((f) => f.file);
      expect(findGaps(names.filter(isSegmentName))).toEqual([]);
      const kinds = published.published.filter((p) => p.subject === 'wal.archived.pg.main').map((p) => `${p.event['fileKind']} ${p.event['file']}`);
      expect(kinds).toContain('history 00000002.history');
      expect(kinds).toContain(`segment ${newSegment}`);
      expect(after.status()).toMatchObject({ state: 'running', systemIdentifier });
    } finally {
      await after.stop();
      await standbyClient.closeAll();
    }
  });
});
