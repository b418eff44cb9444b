import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { chainApplyOrder, exportCollection, exportDelta, readExport, readIdSet, restoreChain, type ChainLink } from '../src/index.js';
import { fakePort, seed } from '@tidemark/testkit';

const bytesOf = async (s: Readable) => buffer(s);
const open = (b: Buffer) => async () => Readable.from([b]);

describe('incremental exports', () => {
  it('restores adds, updates and deletes across a 3-link chain to the identical set', async () => {
    const port = fakePort();
    await seed(port, 'docs', 200, { ts: 100 });
    const base = exportCollection(port, { collection: 'docs', exportId: 'e0', incrementalField: 'updatedAt', pageSize: 64 });
    const b0 = await bytesOf(base.stream);
    const t0 = await base.trailer;
    expect(t0.highWater).toBe(100);

    // Link 1: add 20, update 5, delete 10 (including the first and the last id).
    await seed(port, 'docs', 20, { start: 1000, ts: 200 });
    await port.upsert('docs', [0, 1, 2, 3, 4].map((n) => ({ id: n + 50, vector: Array(8).fill(Math.fround(n / 10)), payload: { n, updated: true, updatedAt: 201 } })));
    await port.deletePoints('docs', [0, 1, 2, 3, 4, 195, 196, 197, 198, 199]);
    const d1 = exportDelta(port, { collection: 'docs', exportId: 'e1', parentExportId: 'e0', parentHighWater: t0.highWater, parentIds: readIdSet(Readable.from([b0])), incrementalField: 'updatedAt', pageSize: 7 });
    const b1 = await bytesOf(d1.stream);
    const t1 = await d1.trailer;
    expect(t1).toMatchObject({ points: 25, deleted: 10, highWater: 201 });

    // Link 2: delete some of the new points, re-add a deleted id, update an updated point again.
    await port.deletePoints('docs', [1000, 1001]);
    await port.upsert('docs', [{ id: 0, vector: Array(8).fill(0.5), payload: { back: true, updatedAt: 300 } }, { id: 50, vector: Array(8).fill(0.25), payload: { again: true, updatedAt: 301 } }]);
    const d2 = exportDelta(port, { collection: 'docs', exportId: 'e2', parentExportId: 'e1', parentHighWater: t1.highWater, parentIds: readIdSet(Readable.from([b1])), incrementalField: 'updatedAt' });
    const b2 = await bytesOf(d2.stream);
    expect(await d2.trailer).toMatchObject({ points: 2, deleted: 2, highWater: 301 });

    const outcome = await restoreChain(port, { collection: 'copy', overwrite: false, links: [open(b0), open(b1), open(b2)], batchSize: 30 });
    expect(outcome.collection).toBe('copy');
    expect(port.all('copy')).toEqual(port.all('docs'));
  });

  it('refuses links applied out of order', async () => {
    const port = fakePort();
    await seed(port, 'docs', 10, { ts: 1 });
    const b0 = await bytesOf(exportCollection(port, { collection: 'docs', exportId: 'e0', incrementalField: 'updatedAt' }).stream);
    const d1 = await bytesOf(exportDelta(port, { collection: 'docs', exportId: 'e1', parentExportId: 'other', parentHighWater: 1, parentIds: readIdSet(Readable.from([b0])), incrementalField: 'updatedAt' }).stream);
    await expect(restoreChain(port, { collection: 'copy', overwrite: false, links: [open(b0), open(d1)] })).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    await expect(restoreChain(port, { collection: 'copy', overwrite: false, links: [open(d1)] })).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    expect(await port.collectionExists('copy')).toBe(false);
  });

  it('a delta without a parent high-water mark takes every point, and stores the full id set', async () => {
    const port = fakePort();
    await seed(port, 'docs', 30, { ts: 5 });
    const bytes = await bytesOf(exportDelta(port, { collection: 'docs', exportId: 'e1', parentExportId: 'e0', parentHighWater: undefined, parentIds: Readable.from([]), incrementalField: 'updatedAt' }).stream);
    const ids: unknown[] = [];
    for await (const id of readIdSet(Readable.from([bytes]))) ids.push(id);
    expect(ids).toEqual(port.all('docs').map((p) => p.id));
    let points = 0;
    for await (const r of readExport(Readable.from([bytes]))) if (r.type === 'points') points += r.points.length;
    expect(points).toBe(30);
  });

  it('orders a chain from its full export to the requested link', async () => {
    const links: Record<string, ChainLink> = {
      e0: { id: 'e0', kind: 'export' },
      e1: { id: 'e1', kind: 'incremental', parentId: 'e0' },
      e2: { id: 'e2', kind: 'incremental', parentId: 'e1' },
      x: { id: 'x', kind: 'incremental', parentId: 'gone' },
      loop: { id: 'loop', kind: 'incremental', parentId: 'loop' },
    };
    const lookup = async (id: string) => links[id];
    expect((await chainApplyOrder('e2', lookup)).map((l) => l.id)).toEqual(['e0', 'e1', 'e2']);
    await expect(chainApplyOrder('x', lookup)).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
    await expect(chainApplyOrder('loop', lookup)).rejects.toBeInstanceOf(TidemarkError);
  });
});
