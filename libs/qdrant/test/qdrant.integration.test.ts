// The domain logic through the real client adapter against the Qdrant test double (or a real
// Qdrant with TIDEMARK_TEST_PROVIDER=containers).
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { createLogger } from '@tidemark/runtime';
import { startQdrant, type QdrantTestServer, points, scrollAll, seedDocs } from '@tidemark/testkit';
import {
  collectFacts, compareWithFacts, createQdrantPort, exportCollection, exportDelta, guardPort, readIdSet, restoreChain,
  snapshotCollection, SINGLE_NODE_COVERAGE, type GuardedPort,
} from '../src/index.js';

const silent = createLogger('test', { LOG_LEVEL: 'silent' });

describe('qdrant logic against the qdrant double', () => {
  let server: QdrantTestServer;
  let port: GuardedPort;

  beforeAll(async () => {
    server = await startQdrant();
    port = guardPort(createQdrantPort({ url: server.url }), silent, 'it', { timeoutMs: 10_000 });
    await seedDocs(port);
  });
  afterAll(async () => {
    port?.shutdown();
    await server?.stop();
  });

  const all = (collection: string) => scrollAll(port, collection);

  it('export → restore into a new collection gives identical ids, vectors and payloads, and the facts match', async () => {
    const facts = await collectFacts(port, 'docs', SINGLE_NODE_COVERAGE, { sampleSize: 32 });
    expect(facts.pointsCount).toBe(1201);
    const { stream, trailer } = exportCollection(port, { collection: 'docs', exportId: 'e0', pageSize: 128, incrementalField: 'updatedAt' });
    const bytes = await buffer(stream);
    expect(await trailer).toMatchObject({ points: 1201, highWater: 100 });
    const outcome = await restoreChain(port, { collection: 'docs_copy', overwrite: false, links: [async () => Readable.from([bytes])] });
    expect(outcome.points).toBe(1201);
    expect(await all('docs_copy')).toEqual(await all('docs'));
    expect((await compareWithFacts(port, 'docs_copy', facts)).filter((c) => !c.ok)).toEqual([]);
    await expect(restoreChain(port, { collection: 'docs_copy', overwrite: false, links: [async () => Readable.from([bytes])] })).rejects.toMatchObject({ code: 'RESTORE_TARGET_EXISTS' });
  });

  it('export and incremental chain → restore gives the identical set', async () => {
    await port.createCollection('chain', { vectors: { size: 16, distance: 'Dot' } });
    await port.upsert('chain', points(0, 100, 1));
    const base = exportCollection(port, { collection: 'chain', exportId: 'c0', incrementalField: 'updatedAt' });
    const b0 = await buffer(base.stream);
    await port.upsert('chain', [...points(100, 10, 2), ...points(5, 3, 3)]);
    await port.deletePoints('chain', [0, 50, 99]);
    const d1 = exportDelta(port, { collection: 'chain', exportId: 'c1', parentExportId: 'c0', parentHighWater: (await base.trailer).highWater, parentIds: readIdSet(Readable.from([b0])), incrementalField: 'updatedAt' });
    const b1 = await buffer(d1.stream);
    expect(await d1.trailer).toMatchObject({ points: 13, deleted: 3, highWater: 3 });
    await port.deletePoints('chain', [100]);
    await port.upsert('chain', points(0, 1, 4));
    const d2 = exportDelta(port, { collection: 'chain', exportId: 'c2', parentExportId: 'c1', parentHighWater: (await d1.trailer).highWater, parentIds: readIdSet(Readable.from([b1])), incrementalField: 'updatedAt' });
    const b2 = await buffer(d2.stream);
    await restoreChain(port, { collection: 'chain_copy', overwrite: false, links: [b0, b1, b2].map((b) => async () => Readable.from([b])) });
    expect(await all('chain_copy')).toEqual(await all('chain'));
  });

  it('snapshot → stored with a matching checksum, restorable by upload, and deleted server-side', async () => {
    const outcome = await snapshotCollection(port, { collection: 'docs', store: async (bytes) => buffer(bytes) });
    if (outcome.qdrantSha256 !== null) expect(outcome.sha256).toBe(outcome.qdrantSha256);
    expect(await port.listSnapshots('docs')).toEqual([]);
    await port.uploadSnapshot('docs_from_snapshot', Readable.from([outcome.stored]), { checksum: outcome.sha256, priority: 'snapshot' });
    expect(await all('docs_from_snapshot')).toEqual(await all('docs'));
  });

  it('snapshot → the server-side snapshot is deleted even when storing fails', async () => {
    const failing = snapshotCollection(port, {
      collection: 'docs',
      store: async (bytes) => {
        bytes.destroy();
        throw new TidemarkError('STORAGE_UNAVAILABLE', 'the store is down');
      },
    });
    await expect(failing).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(await port.listSnapshots('docs')).toEqual([]);
  });

  it('maps 5xx from qdrant to a retryable SOURCE_UNAVAILABLE and a missing collection to TARGET_UNKNOWN', async () => {
    server.faults.failNext(1, 503);
    await expect(port.count('docs')).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: true });
    await expect(port.getCollection('nope')).rejects.toMatchObject({ code: 'TARGET_UNKNOWN', retryable: false });
  });
});
