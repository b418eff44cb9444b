import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { decodeStream, encodeStream, loadKeyRing } from '@tidemark/pipeline';
import { decodeIdSet, encodeIdSet, exportCollection, readExport, restoreChain, type ExportRecord } from '../src/index.js';
import { fakePort, seed } from '@tidemark/testkit';

async function records(bytes: Buffer | Readable): Promise<ExportRecord[]> {
  const out: ExportRecord[] = [];
  for await (const r of readExport(Buffer.isBuffer(bytes) ? Readable.from([bytes]) : bytes)) out.push(r);
  return out;
}

async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    expect(error).toBeInstanceOf(TidemarkError);
    return (error as TidemarkError).code;
  }
  throw new Error('expected a failure');
}

describe('qdrant export format', () => {
  it('round-trips every point through the pipeline (gzip + encryption) and restores an identical collection', async () => {
    const port = fakePort();
    await seed(port, 'docs', 1000);
    await port.upsert('docs', [{ id: 'a3bb189e-8bf9-3888-9912-ace4e6543002', vector: [1, 0, 0, 0, 0, 0, 0, 0], payload: { nested: { deep: [1, 'x', null] } } }]);
    const { stream, trailer } = exportCollection(port, { collection: 'docs', exportId: 'e1', pageSize: 100, incrementalField: 'updatedAt' });
    const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '11'.repeat(32) });
    const encoded = encodeStream(stream, { compression: 'gzip', key: keys.current });
    const stored = await buffer(encoded.output);
    const summary = await encoded.summary;
    expect(await trailer).toMatchObject({ points: 1001, deleted: 0, highWater: 1 });

    const decoded = () => Promise.resolve(decodeStream(Readable.from([stored]), { pipeline: summary.pipeline, sha256: summary.sha256, storedBytes: summary.storedBytes }, keys));
    const outcome = await restoreChain(port, { collection: 'copy', overwrite: false, links: [decoded] });
    expect(outcome).toMatchObject({ collection: 'copy', points: 1001 });
    expect(port.all('copy')).toEqual(port.all('docs'));
  });

  it('scrolls the next page only when the consumer reads (backpressure)', async () => {
    const port = fakePort();
    await seed(port, 'docs', 5000, { dim: 64 });
    const { stream } = exportCollection(port, { collection: 'docs', exportId: 'e1', pageSize: 50 });
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    stream.pause();
    await new Promise((r) => setTimeout(r, 50));
    expect(first.length).toBeGreaterThan(0);
    expect(port.calls.scroll ?? 0).toBeLessThan(10); // of 100 pages
    stream.destroy();
  });

  it('leaves payloads out when includePayload is false', async () => {
    const port = fakePort();
    await seed(port, 'docs', 10);
    const { stream } = exportCollection(port, { collection: 'docs', exportId: 'e1', includePayload: false });
    const recs = await records(await buffer(stream));
    expect(recs[0]).toMatchObject({ type: 'header', header: { includePayload: false, kind: 'export', collection: 'docs' } });
    const points = recs.flatMap((r) => (r.type === 'points' ? r.points : []));
    expect(points).toHaveLength(10);
    expect(points.every((p) => p.payload === undefined && Array.isArray(p.vector))).toBe(true);
    expect(points.map((p) => p.vector)).toEqual(port.all('docs').map((p) => p.vector));
  });

  it('fails clearly on a truncated stream and on altered bytes, before restoring anything', async () => {
    const port = fakePort();
    await seed(port, 'docs', 300);
    const bytes = await buffer(exportCollection(port, { collection: 'docs', exportId: 'e1', pageSize: 100 }).stream);
    expect(await codeOf(records(bytes.subarray(0, bytes.length - 20)))).toBe('INTEGRITY_TRUNCATED');
    expect(await codeOf(records(bytes.subarray(0, 3)))).toBe('INTEGRITY_TRUNCATED');
    expect(await codeOf(records(Buffer.from('not an export at all')))).toBe('INTEGRITY_FORMAT');
    const altered = Buffer.from(bytes);
    altered[bytes.length - 200] = (altered[bytes.length - 200] as number) ^ 0xff;
    expect(['INTEGRITY_CHECKSUM_MISMATCH', 'INTEGRITY_FORMAT']).toContain(await codeOf(records(altered)));
    // A restore from the truncated stream leaves no collection behind.
    const restore = restoreChain(port, { collection: 'copy', overwrite: false, links: [async () => Readable.from([bytes.subarray(0, bytes.length - 20)])] });
    expect(await codeOf(restore)).toBe('INTEGRITY_TRUNCATED');
    expect(await port.collectionExists('copy')).toBe(false);
  });

  it('stores id sets compactly and reads them back in order', () => {
    const ids = [0, 1, 2, 300, 70_000, 2 ** 40, '00000000-0000-0000-0000-000000000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff'];
    const { n, u } = encodeIdSet(ids);
    expect(n.length).toBeLessThan(16);
    expect(u.length).toBe(32);
    expect(decodeIdSet(n, u)).toEqual(ids);
  });
});
