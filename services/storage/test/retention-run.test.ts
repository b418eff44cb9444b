import { describe, expect, it } from 'vitest';
import { subjects } from '@tidemark/contracts';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { createLogger } from '@tidemark/runtime';
import { Catalog } from '../src/catalog/catalog.js';
import { runRetention } from '../src/retention/run.js';
import { commitArtifact, recordingPublisher, verification } from './fixtures.js';

const logger = createLogger('storage-test', { TIDEMARK_LOG_LEVEL: 'silent' });
const now = new Date();
const hoursAgo = (h: number) => new Date(now.getTime() - h * 3600_000);

describe('runRetention (memory backend)', () => {
  it('prunes beyond keepLast, keeps the newest verified one, announces each, and sweeps orphans', async () => {
    const backend = createMemoryBackend();
    const store = new ArtifactStore(backend);
    const oldest = await commitArtifact(store, { requestId: 'r1', createdAt: hoursAgo(30) });
    const verified = await commitArtifact(store, { requestId: 'r2', createdAt: hoursAgo(20) });
    const failedOne = await commitArtifact(store, { requestId: 'r3', createdAt: hoursAgo(10) });
    const newest = await commitArtifact(store, { requestId: 'r4', createdAt: hoursAgo(5) });
    await store.writeVerification(verified, verification(verified.id, 'passed'));
    await store.writeVerification(failedOne, verification(failedOne.id, 'failed'));
    await store.writeVerification(newest, verification(newest.id, 'failed'));
    // An interrupted backup's leftover: data without a manifest.
    await backend.save('artifacts/pg/main/20250101T000000Z-0000000000/data-x.bin', Buffer.from('orphan'));

    const catalog = new Catalog(store);
    const publisher = recordingPublisher();
    const result = await runRetention({
      catalog, store, publisher, logger, policies: new Map([['pg/main', { keepLast: 1, maxAgeDays: 0 }]]), orphanGraceMinutes: 0, now: () => new Date(),
    });

    expect(result.pruned.map((p) => p.artifactId).sort()).toEqual([oldest.id, failedOne.id].sort());
    expect(result.failed).toEqual([]);
    expect(await store.readManifest('pg', 'main', oldest.id)).toBeUndefined();
    expect(await store.readManifest('pg', 'main', verified.id)).toBeDefined();
    expect(catalog.list().map((e) => e.artifactId)).toEqual([newest.id, verified.id]);
    expect(publisher.published).toHaveLength(2);
    expect(publisher.published[0]).toMatchObject({ subject: subjects.artifactPruned('pg', 'main'), msgId: `pruned:${publisher.published[0]?.msgId?.slice(7)}` });
    expect(publisher.published.map((p) => p.msgId).sort()).toEqual([`pruned:${oldest.id}`, `pruned:${failedOne.id}`].sort());
    expect(result.orphans).toMatchObject({ removed: ['artifacts/pg/main/20250101T000000Z-0000000000/data-x.bin'] });

    // Nothing under a pruned artifact's prefix is left behind.
    const left: string[] = [];
    for await (const o of backend.list(`artifacts/pg/main/${oldest.id}/`)) left.push(o.key);
    expect(left).toEqual([]);
  });
});
