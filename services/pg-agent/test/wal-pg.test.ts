// Continuous WAL archiving against a real PostgreSQL 15 and real storage (s3rver, then fs):
// closed segments land committed, in order and byte-identical; the archive trails the primary by
// seconds under load (the RPO figure is printed); a SIGKILLed receiver plus a server restart lose
// nothing; slot growth is reported; stop() leaves no process behind.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalFileManifest } from '@tidemark/contracts';
import type { PostgresConnection } from '@tidemark/config';
import { findGaps, isSegmentName, parseLsn, RECEIVER_PID_FILE, WAL_SEGMENT_SIZE } from '@tidemark/pg';
import { keyRingOf } from '@tidemark/pipeline';
import { createFsBackend, createS3Backend, openDecoded, WalArchive, type StorageBackend } from '@tidemark/storage';
import {
  eventually, makeTempDir, recordingPublisher, removeTempDir, startPostgres, startS3, type PostgresServer, type RecordingPublisher, type S3Endpoint, processesMentioning } from '@tidemark/testkit';
import type { WalArchiver, WalArchiverOptions } from '../src/wal/archiver.js';
import { realServerArchiver } from './wal-fixture.js';

const PASSWORD_ENV = 'TM_WAL_PG_TEST_PGPASSWORD';
const key = { id: 'wal-test-key', key: randomBytes(32) };
const keys = keyRingOf(key);

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function decodedSha(archive: WalArchive, manifest: WalFileManifest): Promise<string> {
  const stream = await openDecoded(archive, manifest, keys);
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('wal archiving (real postgresql, real storage)', () => {
  let server: PostgresServer;
  let s3: S3Endpoint;
  let root: string;
  let spool: string;
  let backend: StorageBackend;
  let archive: WalArchive;
  let conn: PostgresConnection;
  let systemIdentifier: string;
  let archiver: WalArchiver | undefined;
  let published: RecordingPublisher;
  const logs: string[] = [];
  /** sha256 of each segment as PostgreSQL wrote it into pg_wal, read right after the switch. */
  const serverSha = new Map<string, string>();
  const closed: string[] = [];

  const logger = {
    debug: () => undefined,
    info: (details: object, message: string) => logs.push(`info ${message} ${JSON.stringify(details)}`),
    warn: (details: object, message: string) => logs.push(`warn ${message} ${JSON.stringify(details)}`),
    error: (details: object, message: string) => logs.push(`error ${message} ${JSON.stringify(details)}`),
  };

  const newArchiver = (overrides: Partial<WalArchiverOptions> = {}): WalArchiver =>
    realServerArchiver(conn, { spoolDir: spool, encode: { compression: 'zstd', key }, keys, archive, publisher: published, logger }, overrides);

  /** Writes some WAL and closes the segment; remembers the server's bytes of it. */
  const closeSegment = async (): Promise<string> => {
    await server.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    const [row] = await server.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const name = (row as { name: string }).name;
    serverSha.set(name, sha256(await readFile(join(server.dataDir, 'pg_wal', name))));
    closed.push(name);
    return name;
  };

  const archivedNames = async () => (await archive.list('main', systemIdentifier)).map((f) => f.file);
  const archivedEvents = () => published.published.filter((p) => p.subject === 'wal.archived.pg.main').map((p) => p.event);

  beforeAll(async () => {
    [server, s3] = await Promise.all([startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '4', max_replication_slots: '4' } }), startS3()]);
    process.env[PASSWORD_ENV] = server.password;
    conn = { ...server.connection(), passwordEnv: PASSWORD_ENV } as PostgresConnection;
    await server.query('CREATE TABLE filler (id int, body text)');
    const [row] = await server.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    systemIdentifier = (row as { id: string }).id;
    root = await makeTempDir('tidemark-wal-pg-');
    await chmod(root, 0o711); // pg_receivewal runs as postgres and must reach the spool
    spool = join(root, 'wal', 'main');
    backend = await createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: 'wal-pg', prefix: 'tidemark' });
    archive = new WalArchive(backend);
    published = recordingPublisher();
  });

  afterAll(async () => {
    await archiver?.stop();
    await backend?.close();
    await Promise.all([server?.stop(), s3?.stop()]);
    if (root) await removeTempDir(root);
    delete process.env[PASSWORD_ENV];
    if (process.env['TM_WAL_TEST_DEBUG']) console.log(logs.join('\n'));
  });

  it('archives closed segments in order, committed and byte-identical to the server, and uploads the padded partial', async () => {
    archiver = newArchiver();
    archiver.start();
    await eventually(() => archiver?.status().state === 'running', 20_000, 'wal archiving to start');
    const names = [await closeSegment(), await closeSegment(), await closeSegment()];
    const last = names[2] as string;
    await eventually(async () => (await archivedNames()).includes(last), 20_000, `segment ${last} in the archive`);

    for (const name of names) {
      const manifest = (await archive.readManifest('main', systemIdentifier, name)) as WalFileManifest;
      expect(manifest).toMatchObject({ fileKind: 'segment', timeline: 1, systemIdentifier, data: { rawBytes: WAL_SEGMENT_SIZE } });
      expect(manifest.pipeline.encryption?.keyId).toBe(key.id);
      expect(await decodedSha(archive, manifest)).toBe(serverSha.get(name));
    }
    const segmentEvents = archivedEvents().filter((e) => e['fileKind'] === 'segment');
    const announced = segmentEvents.map((e) => e['file'] as string);
    expect(announced).toEqual([...announced].sort());
    expect(announced).toEqual(expect.arrayContaining(names));
    const lastEvent = segmentEvents.find((e) => e['file'] === last);
    expect(lastEvent).toMatchObject({ systemIdentifier, timeline: 1, engine: 'pg', target: 'main' });
    expect(parseLsn(lastEvent?.['endLsn'] as string) - parseLsn(lastEvent?.['startLsn'] as string)).toBe(BigInt(WAL_SEGMENT_SIZE));
    expect(typeof lastEvent?.['lagBytes']).toBe('number');
    expect(published.published.find((p) => p.event === lastEvent)?.msgId).toBe(`wal:${systemIdentifier}:${last}`);

    // The open segment: pg_receivewal keeps it padded with zeros to a whole segment, so the
    // stored partial is a valid segment file for restore_command; compression makes the zeros free.
    await server.query('INSERT INTO filler VALUES (0, $1)', ['into the open segment']);
    await eventually(() => archivedEvents().some((e) => e['fileKind'] === 'partial'), 20_000, 'a partial upload');
    const partialFile = (await readdir(spool)).find((n) => n.endsWith('.partial')) as string;
    expect((await stat(join(spool, partialFile))).size).toBe(WAL_SEGMENT_SIZE);
    const partial = (await archive.readManifest('main', systemIdentifier, partialFile)) as WalFileManifest;
    expect(partial).toMatchObject({ fileKind: 'partial', data: { rawBytes: WAL_SEGMENT_SIZE } });
    expect(partial.data.storedBytes).toBeLessThan(WAL_SEGMENT_SIZE / 16);
    // A closed segment supersedes its partial uploads.
    expect((await archivedNames()).filter((n) => n.endsWith('.partial'))).toEqual([partialFile]);
  });

  it('trails the primary by seconds under a steady write load (RPO)', async () => {
    let loading = true;
    let inserted = 0;
    const load = (async () => {
      while (loading) {
        await server.query('INSERT INTO filler VALUES ($1, $2)', [inserted, randomBytes(100).toString('hex')]);
        inserted += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const waits: number[] = [];
    const eventsBefore = archivedEvents().length;
    const newestEnd = () => archivedEvents().reduce((max, e) => (e['endLsn'] && parseLsn(e['endLsn'] as string) > max ? parseLsn(e['endLsn'] as string) : max), 0n);
    const started = Date.now();
    try {
      while (Date.now() - started < 15_000) {
        const [row] = await server.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        const target = parseLsn((row as { lsn: string }).lsn);
        const sampledAt = Date.now();
        await eventually(() => newestEnd() >= target, 10_000, 'the archive to reach the sampled position', 20);
        waits.push(Date.now() - sampledAt);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    } finally {
      loading = false;
      await load;
    }
    const sorted = [...waits].sort((a, b) => a - b);
    const during = archivedEvents().slice(eventsBefore);
    const lagSeconds = during.map((e) => e['lagSeconds'] as number | undefined).filter((s): s is number => s !== undefined);
    const partials = during.filter((e) => e['fileKind'] === 'partial');
    const storedPerPartial = partials.reduce((sum, e) => sum + (e['storedBytes'] as number), 0) / Math.max(1, partials.length);
    console.log(
      `[wal rpo] partialIntervalSeconds=1, ${inserted} inserts at 20/s over ${Math.round((Date.now() - started) / 1000)} s, ${waits.length} samples: ` +
        `wait until archived p50=${sorted[Math.floor(sorted.length / 2)]} ms, max=${sorted.at(-1)} ms; ` +
        `event lagSeconds max=${Math.max(...lagSeconds)}; ${partials.length} partial uploads, ${Math.round(storedPerPartial / 1024)} KiB stored each on average`,
    );
    expect(waits.length).toBeGreaterThan(5);
    expect(Math.max(...waits)).toBeLessThan(10_000);
  });

  it('loses no segment across a SIGKILLed receiver and a server restart', async () => {
    const first = (await archivedNames()).filter(isSegmentName)[0] as string;
    // pg_receivewal may be between runs (it exits on a lost connection and is restarted): wait for one.
    await eventually(() => archiver?.status().receiver?.pid !== undefined, 20_000, 'a running pg_receivewal');
    const pid = archiver?.status().receiver?.pid as number;
    expect(pid).toBeGreaterThan(0);
    await closeSegment();
    process.kill(pid, 'SIGKILL');
    await closeSegment();
    // Restart the server only once the killed receiver runs again, so each event costs one restart.
    await eventually(() => {
      const receiver = archiver?.status().receiver;
      return receiver?.pid !== undefined && receiver.pid !== pid;
    }, 20_000, 'pg_receivewal restarted after the kill');
    await server.restart?.();
    await closeSegment();
    const last = await closeSegment();
    await eventually(async () => (await archivedNames()).includes(last), 30_000, `segment ${last} after the restart`);

    const names = await archivedNames();
    const segments = names.filter(isSegmentName);
    expect(segments[0]).toBe(first);
    expect(findGaps(segments)).toEqual([]);
    expect(segments).toEqual(expect.arrayContaining(closed));
    expect(new Set(names).size).toBe(names.length);
    // No partial left for a segment that is committed.
    for (const name of names.filter((n) => n.endsWith('.partial'))) expect(segments).not.toContain(name.replace('.partial', ''));
    for (const name of closed) {
      const manifest = (await archive.readManifest('main', systemIdentifier, name)) as WalFileManifest;
      expect(await decodedSha(archive, manifest)).toBe(serverSha.get(name));
    }
    expect(archiver?.status().receiver?.restarts).toBeGreaterThanOrEqual(2);
  });

  it('stops cleanly: pg_receivewal gets SIGINT, no process is left', async () => {
    await archiver?.stop();
    await archiver?.stop();
    expect(archiver?.status().state).toBe('stopped');
    expect(await processesMentioning(spool)).toEqual([]);
    expect((await readdir(spool)).includes(RECEIVER_PID_FILE)).toBe(false);
    expect(logs.filter((l) => l.startsWith('info pg_receivewal stopped')).at(-1)).toContain('"code":0');
  });

  it('reports a slot holding back WAL while archiving was stopped, then catches up without re-uploading', async () => {
    const kept = (await readdir(spool)).filter(isSegmentName);
    const keptManifests = await Promise.all(kept.map((name) => archive.readManifest('main', systemIdentifier, name)));
    await server.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 40000) g'); // several MiB of WAL
    const [row] = await server.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const last = (row as { name: string }).name;
    published = recordingPublisher();
    archiver = newArchiver({ maxSlotRetainedMb: 1 });
    archiver.start();
    await eventually(() => published.published.some((p) => p.subject === 'wal.problem.pg.main'), 20_000, 'a slot_growth problem');
    const problem = published.published.find((p) => p.subject === 'wal.problem.pg.main');
    expect(problem?.event).toMatchObject({ problem: 'slot_growth', limitBytes: 1024 * 1024, systemIdentifier });
    expect(problem?.event['retainedBytes']).toBeGreaterThan(1024 * 1024);
    expect(problem?.msgId).toMatch(/^wal-problem:main:slot_growth:\d+$/);

    await eventually(async () => (await archivedNames()).includes(last), 30_000, `segment ${last}`);
    expect(findGaps((await archivedNames()).filter(isSegmentName))).toEqual([]);
    // The closed segment kept in the spool was offered again: same content, so only announced.
    for (const [index, name] of kept.entries()) {
      expect((await archive.readManifest('main', systemIdentifier, name))?.data.key).toBe(keptManifests[index]?.data.key);
    }
    const health = archiver.health();
    expect(health.detail).toMatchObject({ state: 'running', systemIdentifier });
    await archiver.stop();
    expect(published.published.filter((p) => p.subject === 'wal.problem.pg.main')).toHaveLength(1); // rate-limited
  });

  it('archives into filesystem storage too', async () => {
    const fsRoot = join(root, 'storage');
    const fsBackend = await createFsBackend({ root: fsRoot });
    const fsArchive = new WalArchive(fsBackend);
    archiver = newArchiver({ archive: fsArchive, encode: { compression: 'gzip' } });
    archiver.start();
    await eventually(() => archiver?.status().state === 'running', 20_000, 'wal archiving to start');
    const name = await closeSegment();
    await eventually(async () => (await fsArchive.list('main', systemIdentifier)).some((f) => f.file === name), 20_000, `segment ${name} in the fs archive`);
    const manifest = (await fsArchive.readManifest('main', systemIdentifier, name)) as WalFileManifest;
    expect(manifest.pipeline).toMatchObject({ compression: 'gzip', encryption: null });
    expect(await decodedSha(fsArchive, manifest)).toBe(serverSha.get(name));
    await archiver.stop();
    await fsBackend.close();
  });
});
