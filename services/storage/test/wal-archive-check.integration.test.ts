// The storage service's WAL archive check against a real nats-server and the filesystem
// backend: a whole archive is quiet, a deleted segment raises exactly one wal.problem gap event
// per hour (however many passes, and across a restarted checker), base backups are listed by
// the catalog, and an encrypted history file is read for exact timeline fork points.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { MSG_ID_HEADER, STREAMS, WAL_STREAM, WalProblem, decode, filters, parseMessage, subjects } from '@tidemark/contracts';
import { historyFileName, segmentNameAt } from '@tidemark/pg';
import { keyRingOf } from '@tidemark/pipeline';
import { createEventPublisher, createLogger, ensureStreams } from '@tidemark/runtime';
import { ArtifactStore, WalArchive, createFsBackend, type StorageBackend } from '@tidemark/storage';
import { makeTempDir, removeTempDir, startNats, type NatsTestServer } from '@tidemark/testkit';
import { Catalog } from '../src/catalog/catalog.js';
import { startStorageService, type StorageService } from '../src/service.js';
import { ArchiveChecker, problemMsgId } from '../src/wal/check-run.js';
import { recordingPublisher } from './fixtures.js';
import { SYSID, archiveFile, commitBaseBackup, segs } from './wal-fixtures.js';

const logger = createLogger('wal-check-it', { TIDEMARK_LOG_LEVEL: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HOUR = 3600_000;
// The checkers' clock: the middle of the next hour, so that every file written by the test is
// settled and no pass straddles an hour boundary.
const checkNow = new Date((Math.floor(Date.now() / HOUR) + 1) * HOUR + HOUR / 2);

describe('WAL archive check (NATS + fs storage)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let root: string;
  let backend: StorageBackend;
  let store: ArtifactStore;
  let archive: WalArchive;
  let service: StorageService;
  const problems: Array<{ event: WalProblem; msgId: string | undefined }> = [];

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
    root = await makeTempDir('tidemark-wal-check-');
    backend = await createFsBackend({ root });
    store = new ArtifactStore(backend);
    archive = new WalArchive(backend);
    await commitBaseBackup(store, { id: '20250101T000000Z-b1', target: 'main', createdAt: new Date(Date.now() - 3600_000), startLsn: '0/2000028' });
    for (const file of [...segs(1, 1, 8), `${segmentNameAt(1, 9)}.partial`]) await archiveFile(archive, 'main', file);
    nc.subscribe(filters.walProblem, {
      callback: (_e, msg) => problems.push({ event: parseMessage(WalProblem, decode(msg.data, msg.headers)), msgId: msg.headers?.get(MSG_ID_HEADER) }),
    });
    service = await startStorageService({
      nc, js: nc.jetstream(), jsm, publisher: createEventPublisher(nc.jetstream()), logger, store,
      policies: new Map(), retentionIntervalMs: 3600_000, orphanGraceMinutes: 60, runRetentionPeriodically: false,
      walTargets: ['main'], runArchiveChecksPeriodically: false, archiveCheck: { settleMs: 0, now: () => checkNow },
    });
  });

  afterAll(async () => {
    await service?.stop();
    await nc?.close();
    await backend?.close();
    await server?.stop();
    if (root) await removeTempDir(root);
  });

  const storedProblems = async (): Promise<number> => {
    const info = await jsm.streams.info(WAL_STREAM.name, { subjects_filter: filters.walProblem });
    return Object.values(info.state.subjects ?? {}).reduce((sum, n) => sum + n, 0);
  };

  it('lists base backups in the catalog (kind base) with their facts', async () => {
    const reply = await nc.request(subjects.catalogList(), new TextEncoder().encode('{"engine":"pg","target":"main"}'), { timeout: 5000 });
    const list = JSON.parse(new TextDecoder().decode(reply.data));
    expect(list.artifacts).toMatchObject([{ artifactId: '20250101T000000Z-b1', kind: 'base', format: 'pg_basebackup-tar' }]);
    const described = await nc.request(subjects.catalogDescribe(), new TextEncoder().encode('{"artifactId":"20250101T000000Z-b1"}'), { timeout: 5000 });
    expect(JSON.parse(new TextDecoder().decode(described.data)).manifest.source).toMatchObject({ startLsn: '0/2000028', systemIdentifier: SYSID });
  });

  it('stays quiet on a whole archive', async () => {
    const [result] = await service.archiveCheckPass();
    expect(result).toMatchObject({ target: 'main', systemIdentifier: SYSID, findings: [], published: 0 });
    expect(result?.checked).toMatchObject({ from: segmentNameAt(1, 2), to: segmentNameAt(1, 9), fromBaseBackup: '20250101T000000Z-b1' });
    await nc.flush();
    await sleep(200);
    expect(problems).toEqual([]);
    expect(await storedProblems()).toBe(0);
  });

  it('raises one gap event when a segment is deleted, and no duplicate within the hour', async () => {
    const deleted = segmentNameAt(1, 5);
    await archive.remove('main', SYSID, deleted);
    const [first] = await service.archiveCheckPass();
    expect(first).toMatchObject({ published: 1, findings: [{ problem: 'gap', missing: [deleted], missingCount: 1 }] });
    await expect.poll(() => problems.length, { timeout: 5000 }).toBe(1);
    expect(problems[0]?.event).toMatchObject({ engine: 'pg', target: 'main', problem: 'gap', systemIdentifier: SYSID, missing: [deleted], missingCount: 1 });
    expect(problems[0]?.event.summary).toContain(deleted);
    expect(problems[0]?.msgId).toBe(problemMsgId('main', { problem: 'gap', systemIdentifier: SYSID, key: deleted }, checkNow));

    // The same service again: nothing published. A restarted checker publishes with the same
    // msgId and the stream keeps one.
    const [second] = await service.archiveCheckPass();
    expect(second).toMatchObject({ published: 0, findings: [{ problem: 'gap' }] });
    const freshCatalog = new Catalog(store);
    await freshCatalog.rebuild();
    const restarted = new ArchiveChecker({ archive, catalog: freshCatalog, publisher: createEventPublisher(nc.jetstream()), logger, settleMs: 0, now: () => checkNow });
    expect((await restarted.check('main')).published).toBe(1);
    expect(await storedProblems()).toBe(1);

    // Next hour, the problem persists: it is published again.
    const later = new ArchiveChecker({ archive, catalog: service.catalog, publisher: createEventPublisher(nc.jetstream()), logger, settleMs: 0, now: () => new Date(checkNow.getTime() + HOUR) });
    expect((await later.check('main')).published).toBe(1);
    expect(await storedProblems()).toBe(2);
  });

  it('reads an encrypted history file with the key ring for the exact fork point', async () => {
    const key = { id: 'test-key', key: randomBytes(32) };
    // Timeline 2 forked at 0/5000100; its segments 5 and 6 never reached the archive.
    for (const file of segs(1, 1, 9)) await archiveFile(archive, 'forked', file);
    await archiveFile(archive, 'forked', historyFileName(2), { content: '1\t0/5000100\tno recovery target specified\n', key });
    for (const file of segs(2, 7, 8)) await archiveFile(archive, 'forked', file);
    const catalog = new Catalog(store);
    await catalog.rebuild();

    const inferred = await new ArchiveChecker({ archive, catalog, publisher: recordingPublisher(), logger, settleMs: 0 }).check('forked');
    expect(inferred.findings).toEqual([]);
    expect(inferred.checked?.chain).toBe('names');

    const publisher = recordingPublisher();
    const exact = await new ArchiveChecker({ archive, catalog, publisher, logger, settleMs: 0, keyRing: keyRingOf(key) }).check('forked');
    expect(exact.checked?.chain).toBe('history');
    expect(exact.findings).toMatchObject([{ problem: 'gap', missing: [segmentNameAt(2, 5), segmentNameAt(2, 6)] }]);
    expect(publisher.published).toMatchObject([{ subject: subjects.walProblem('pg', 'forked') }]);
  });

  it('summarises the archive per target and cluster on catalog.wal', async () => {
    const ask = async (body: string) => JSON.parse(new TextDecoder().decode((await nc.request(subjects.catalogWal(), new TextEncoder().encode(body), { timeout: 5000 })).data));
    const main = await ask('{"target":"main"}');
    expect(main.archives).toEqual([{
      target: 'main', systemIdentifier: SYSID, current: true, segments: 7, partials: 1, histories: 0, timelines: [1],
      firstSegment: segmentNameAt(1, 1), lastSegment: segmentNameAt(1, 8), storedBytes: expect.any(Number),
      newestFile: expect.any(String), newestArchivedAt: expect.any(String),
    }]);
    expect(main.archives[0].storedBytes).toBeGreaterThan(0);
    const all = await ask('');
    expect(all.archives.map((a: { target: string }) => a.target)).toEqual(['forked', 'main']);
    expect(all.archives[0]).toMatchObject({ histories: 1, timelines: [1, 2], lastSegment: segmentNameAt(2, 8) });
    expect(await ask('{"target":"Not A Target"}')).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
  });
});
