// Issue 3, test 5: retention removes base backups and their WAL together and keeps what
// point-in-time recovery for the retained window needs. Real S3 endpoint (s3rver or MinIO).
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects } from '@tidemark/contracts';
import { historyFileName, segmentNameAt } from '@tidemark/pg';
import { createLogger } from '@tidemark/runtime';
import { ArtifactStore, WalArchive, createS3Backend, walFileKeys, type StorageBackend } from '@tidemark/storage';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { Catalog } from '../src/catalog/catalog.js';
import { runRetention } from '../src/retention/run.js';
import { ArchiveChecker } from '../src/wal/check-run.js';
import { planArchiveCheck } from '../src/wal/check.js';
import { recordingPublisher } from './fixtures.js';
import { OTHER_SYSID, SYSID, archiveFile, commitBaseBackup, segs } from './wal-fixtures.js';

const logger = createLogger('wal-retention-it', { TIDEMARK_LOG_LEVEL: 'silent' });
const HOUR = 3600_000;

describe('retention of base backups with their WAL (S3)', () => {
  let s3: S3Endpoint;
  let backend: StorageBackend;

  beforeAll(async () => {
    s3 = await startS3();
    backend = await createS3Backend({
      endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: 'wal-retention', prefix: 'tidemark',
    });
  });
  afterAll(async () => {
    await backend?.close();
    await s3?.stop();
  });

  it('keepLast 2 removes B1 and the WAL before B2\'s start, keeps B2 onwards whole, and clears a replaced cluster', async () => {
    const store = new ArtifactStore(backend);
    const archive = new WalArchive(backend);
    // A replaced cluster: WAL archived before the current cluster's base backups, none of its own.
    for (const file of [...segs(1, 1, 4), historyFileName(2)]) await archiveFile(archive, 'main', file, { sysid: OTHER_SYSID });
    // The current cluster: timeline 1 up to a promotion in segment 10, then timeline 2.
    const walBefore = [...segs(1, 1, 9), `${segmentNameAt(1, 10)}.partial`, historyFileName(2), ...segs(2, 10, 13), `${segmentNameAt(2, 14)}.partial`];
    for (const file of walBefore) await archiveFile(archive, 'main', file);
    // The base backups are taken after that WAL was archived (a minute apart, so that listing
    // times with a resolution of one second cannot blur the order).
    const t0 = Date.now();
    const b1 = await commitBaseBackup(store, { id: '20250101T010000Z-b1', target: 'main', createdAt: new Date(t0 + 60_000), startLsn: '0/3000028' });
    const b2 = await commitBaseBackup(store, { id: '20250101T020000Z-b2', target: 'main', createdAt: new Date(t0 + 120_000), startLsn: '0/6000060' });
    const b3 = await commitBaseBackup(store, { id: '20250101T030000Z-b3', target: 'main', createdAt: new Date(t0 + 180_000), startLsn: '0/B000028', timeline: 2 });
    // A killed upload's leftover: WAL data without a manifest.
    const orphanKey = walFileKeys('main', SYSID, segmentNameAt(2, 15)).data('deadbeef');
    await backend.save(orphanKey, Readable.from([Buffer.from('half a segment')]));

    const catalog = new Catalog(store);
    const publisher = recordingPublisher();
    const result = await runRetention({
      catalog, store, publisher, logger, walArchive: archive, orphanGraceMinutes: 0,
      policies: new Map([['pg/main', { keepLast: 2, maxAgeDays: 0 }]]),
    });

    // The base backup goes first, announced as before.
    expect(result.pruned.map((p) => p.artifactId)).toEqual([b1.id]);
    expect(publisher.published).toMatchObject([{ subject: subjects.artifactPruned('pg', 'main'), msgId: `pruned:${b1.id}` }]);
    expect(await store.readManifest('pg', 'main', b1.id)).toBeUndefined();
    expect(await store.readManifest('pg', 'main', b2.id)).toBeDefined();
    expect(await store.readManifest('pg', 'main', b3.id)).toBeDefined();

    // Then the WAL: everything before B2's start segment (position 6), and all of the replaced cluster.
    const [wal] = result.wal;
    expect(wal?.error).toBeUndefined();
    expect(wal?.removed.filter((r) => r.systemIdentifier === SYSID).map((r) => r.file)).toEqual(segs(1, 1, 5));
    expect(wal?.removed.filter((r) => r.systemIdentifier === OTHER_SYSID).map((r) => r.file)).toEqual([...segs(1, 1, 4), historyFileName(2)]);
    expect(wal?.removedBytes).toBeGreaterThan(0);
    expect(wal?.clusters.find((c) => c.systemIdentifier === SYSID)).toMatchObject({ rule: 'base_backups', keptFrom: segmentNameAt(1, 6), neededBy: b2.id });
    expect(result.walOrphans).toMatchObject({ removed: [orphanKey] });

    const left = await archive.list('main');
    expect(left.map((f) => f.systemIdentifier)).not.toContain(OTHER_SYSID);
    expect(left.map((f) => f.file)).toEqual([...segs(1, 6, 9), `${segmentNameAt(1, 10)}.partial`, historyFileName(2), ...segs(2, 10, 13), `${segmentNameAt(2, 14)}.partial`]);
    // Nothing is left under removed files' prefixes (data objects go with their manifest).
    const keys: string[] = [];
    for await (const o of backend.list('wal/')) keys.push(o.key);
    expect(keys.filter((k) => k.includes(`/${OTHER_SYSID}/`) || k.includes(`/${segmentNameAt(1, 5)}/`) || k === orphanKey)).toEqual([]);

    // What point-in-time recovery from B2 and B3 needs is whole: the archive check agrees.
    const plan = planArchiveCheck({
      target: 'main', listing: left, now: new Date(Date.now() + HOUR),
      baseBackups: [b2, b3].map((m) => ({ artifactId: m.id, systemIdentifier: SYSID, startLsn: (m.source as { startLsn: string }).startLsn, startTimeline: 1, createdAt: m.createdAt })),
    });
    expect(plan.findings).toEqual([]);
    expect(plan.checked).toMatchObject({ from: segmentNameAt(1, 6), to: `${segmentNameAt(2, 14)}`, timelines: [1, 2], fromBaseBackup: b2.id });
    const check = await new ArchiveChecker({ archive, catalog, publisher: recordingPublisher(), logger, settleMs: 0 }).check('main');
    expect(check).toMatchObject({ findings: [], published: 0 });

    // A second pass has nothing more to do.
    const again = await runRetention({ catalog, store, publisher, logger, walArchive: archive, orphanGraceMinutes: 0, policies: new Map([['pg/main', { keepLast: 2, maxAgeDays: 0 }]]) });
    expect(again.pruned).toEqual([]);
    expect(again.wal[0]?.removed).toEqual([]);
  });
});
