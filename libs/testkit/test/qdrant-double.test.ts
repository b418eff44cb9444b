// The Qdrant test double, driven through @qdrant/js-client-rest as Tidemark drives a real Qdrant.
import { hashingTap } from '../src/qdrant-double/hash-tap.js';
import { createWriteStream, openAsBlob } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir, startQdrant, testProvider, type QdrantTestServer } from '../src/index.js';

const DIM = 8;
const COUNT = 1000;

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

const next = random(42);
const vectors = Array.from({ length: COUNT }, () => Array.from({ length: DIM }, next));
const payloadOf = (i: number) => ({ i, group: i % 5, ts: i * 10, name: `point-${i}`, tags: [`t${i % 3}`] });

/** What Qdrant stores for Cosine: the float32 vector, normalised. */
function normalised(vector: number[]): Float32Array {
  const v = Float32Array.from(vector);
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
  return v;
}

async function scrollAll(client: QdrantClient, collection: string): Promise<Schemas['Record'][]> {
  const out: Schemas['Record'][] = [];
  let offset: Schemas['ExtendedPointId'] | undefined;
  for (;;) {
    const page = await client.scroll(collection, { limit: 128, offset, with_payload: true, with_vector: true });
    out.push(...page.points);
    if (page.next_page_offset === null || page.next_page_offset === undefined) return out;
    offset = page.next_page_offset as Schemas['ExtendedPointId'];
  }
}

async function download(url: string, path: string): Promise<{ sha256: string; size: number }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/octet-stream');
  const { tap, result } = hashingTap();
  await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), tap, createWriteStream(path));
  const { checksum, size } = result();
  return { sha256: checksum, size };
}

async function upload(url: string, file: string): Promise<Response> {
  const form = new FormData();
  form.append('snapshot', await openAsBlob(file), 'upload.snapshot');
  return fetch(url, { method: 'POST', body: form });
}

describe.skipIf(testProvider() === 'containers')('the qdrant test double through @qdrant/js-client-rest', () => {
  let qdrant: QdrantTestServer;
  let client: QdrantClient;
  let work: string;

  beforeAll(async () => {
    qdrant = await startQdrant();
    client = new QdrantClient({ url: qdrant.url, checkCompatibility: false });
    work = await makeTempDir('tidemark-qdrant-test');
  });

  afterAll(async () => {
    await qdrant?.stop();
    if (work) await removeTempDir(work);
  });

  it('answers version and health probes', async () => {
    const root = (await (await fetch(`${qdrant.url}/`)).json()) as Schemas['VersionInfo'];
    expect(root).toMatchObject({ title: 'qdrant - vector search engine', version: '1.19.0' });
    expect(await client.versionInfo()).toMatchObject({ version: '1.19.0' });
    expect(await (await fetch(`${qdrant.url}/readyz`)).text()).toBe('all shards are ready');
    expect((await fetch(`${qdrant.url}/healthz`)).status).toBe(200);
  });

  it('creates a collection and reports its config', async () => {
    expect(await client.createCollection('docs', { vectors: { size: DIM, distance: 'Cosine' }, shard_number: 3, replication_factor: 1 })).toBe(true);
    const info = await client.getCollection('docs');
    expect(info.status).toBe('green');
    expect(info.points_count).toBe(0);
    expect(info.config.params).toMatchObject({ vectors: { size: DIM, distance: 'Cosine' }, shard_number: 3, replication_factor: 1 });
    expect(info.config.hnsw_config.m).toBe(16);
    expect(await client.collectionExists('docs')).toEqual({ exists: true });
    expect(await client.collectionExists('nope')).toEqual({ exists: false });
    expect((await client.getCollections()).collections).toEqual([{ name: 'docs' }]);
    await expect(client.createCollection('docs', { vectors: { size: DIM, distance: 'Cosine' } })).rejects.toMatchObject({ status: 409 });
  });

  it('upserts 1000 points and counts them', async () => {
    for (let start = 0; start < COUNT; start += 250) {
      const points = vectors.slice(start, start + 250).map((vector, k) => ({ id: start + k, vector, payload: payloadOf(start + k) }));
      expect(await client.upsert('docs', { wait: true, points })).toMatchObject({ status: 'completed' });
    }
    expect(await client.count('docs', { exact: true })).toEqual({ count: COUNT });
    expect((await client.getCollection('docs')).points_count).toBe(COUNT);
    expect(await client.count('docs', { exact: true, filter: { must: [{ key: 'ts', range: { gte: 5000 } }] } })).toEqual({ count: 500 });
    await expect(client.upsert('docs', { wait: true, points: [{ id: 1, vector: [1, 2] }] })).rejects.toMatchObject({ status: 400 });
  });

  it('scrolls in pages ordered by id with exact payloads and stored vectors', async () => {
    const all = await scrollAll(client, 'docs');
    expect(all.map((p) => p.id)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    for (const point of [all[0], all[517], all[999]]) {
      const i = point?.id as number;
      expect(point?.payload).toEqual(payloadOf(i));
      expect(point?.vector).toEqual(Array.from(normalised(vectors[i] as number[])));
    }
    const page = await client.scroll('docs', { limit: 10, offset: 995 });
    expect(page.points.map((p) => p.id)).toEqual([995, 996, 997, 998, 999]);
    expect(page.next_page_offset ?? null).toBeNull();
    expect(page.points[0]?.vector ?? null).toBeNull();
  });

  it('filters a scroll by a payload range and by ids', async () => {
    const page = await client.scroll('docs', {
      limit: 100,
      filter: { must: [{ key: 'ts', range: { gte: 100, lt: 200 } }, { has_id: [10, 12, 14, 500] }] },
      with_payload: ['name'],
    });
    expect(page.points).toEqual([
      { id: 10, payload: { name: 'point-10' }, vector: null },
      { id: 12, payload: { name: 'point-12' }, vector: null },
      { id: 14, payload: { name: 'point-14' }, vector: null },
    ]);
    const tagged = await client.count('docs', { filter: { must: [{ key: 'tags', match: { value: 't1' } }], must_not: [{ key: 'group', match: { any: [0, 1] } }] } });
    expect(tagged.count).toBe(Array.from({ length: COUNT }, (_, i) => i).filter((i) => i % 3 === 1 && i % 5 > 1).length);
  });

  it('queries the top-k nearest points as a brute-force search does', async () => {
    const query = Array.from({ length: DIM }, next);
    const q = normalised(query);
    const expected = vectors
      .map((v, id) => {
        const n = normalised(v);
        let score = 0;
        for (let k = 0; k < DIM; k++) score += (q[k] as number) * (n[k] as number);
        return { id, score };
      })
      .sort((a, b) => b.score - a.score)
      .slice(0, 10);
    const result = await client.query('docs', { query, limit: 10, with_payload: true });
    expect(result.points.map((p) => p.id)).toEqual(expected.map((e) => e.id));
    result.points.forEach((p, k) => expect(p.score).toBeCloseTo(expected[k]?.score as number, 6));
    expect(result.points[0]?.payload).toEqual(payloadOf(expected[0]?.id as number));
    const filtered = await client.query('docs', { query: { nearest: query }, limit: 3, filter: { must: [{ key: 'group', match: { value: 2 } }] } });
    expect(filtered.points.every((p) => (p.id as number) % 5 === 2)).toBe(true);
    expect(filtered.points[0]?.payload ?? null).toBeNull();
  });

  it('queries named vectors with `using` and Euclid distance', async () => {
    await client.createCollection('named', { vectors: { img: { size: 2, distance: 'Euclid' }, txt: { size: 3, distance: 'Dot' } } });
    await client.upsert('named', {
      wait: true,
      points: [
        { id: 1, vector: { img: [0, 0], txt: [1, 0, 0] } },
        { id: 2, vector: { img: [3, 4], txt: [0, 1, 0] } },
        { id: '5c56c793-69f3-4fbf-87e6-c4bf54c28c26', vector: { img: [1, 1] } },
      ],
    });
    const near = await client.query('named', { query: [0.9, 0.9], using: 'img', limit: 3, with_vector: ['img'] });
    expect(near.points.map((p) => p.id)).toEqual(['5c56c793-69f3-4fbf-87e6-c4bf54c28c26', 1, 2]);
    expect(near.points[2]?.score).toBeCloseTo(Math.hypot(2.1, 3.1), 5);
    expect(near.points[0]?.vector).toEqual({ img: [1, 1] });
    const dot = await client.query('named', { query: [0, 2, 0], using: 'txt', limit: 5 });
    expect(dot.points.map((p) => [p.id, p.score])).toEqual([[2, 2], [1, 0]]);
    await expect(client.query('named', { query: [1, 1], using: 'nope' })).rejects.toMatchObject({ status: 400 });
  });

  it('retrieves points by id', async () => {
    const records = await client.retrieve('docs', { ids: [3, 999, 5000], with_vector: false });
    expect(records.map((r) => r.id)).toEqual([3, 999]);
    expect(records[0]?.payload).toEqual(payloadOf(3));
  });

  it('deletes points by filter and by id', async () => {
    await client.createCollection('scratch', { vectors: { size: DIM, distance: 'Dot' } });
    await client.upsert('scratch', { wait: true, points: vectors.map((vector, id) => ({ id, vector, payload: payloadOf(id) })) });
    expect(await client.delete('scratch', { wait: true, filter: { must: [{ key: 'group', match: { value: 4 } }] } })).toMatchObject({ status: 'completed' });
    expect((await client.count('scratch')).count).toBe(800);
    await client.delete('scratch', { wait: true, points: [0, 1, 4] });
    expect((await client.count('scratch')).count).toBe(798);
    expect(await client.deleteCollection('scratch')).toBe(true);
    expect(await client.deleteCollection('scratch')).toBe(false);
  });

  describe('collection snapshots', () => {
    let snapshot: Schemas['SnapshotDescription'];
    let file: string;
    let original: Schemas['Record'][];

    beforeAll(async () => {
      original = await scrollAll(client, 'docs');
    });

    it('creates (wait=true), lists and downloads a snapshot whose sha256 is the listed checksum', async () => {
      const created = await client.createSnapshot('docs', { wait: true });
      expect(created).not.toBeNull();
      snapshot = created as Schemas['SnapshotDescription'];
      expect(snapshot.name).toMatch(/^docs-\d+-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.snapshot$/);
      const listed = await client.listSnapshots('docs');
      expect(listed).toEqual([snapshot]);
      expect(snapshot.checksum).toMatch(/^[0-9a-f]{64}$/);
      file = join(work, 'docs.snapshot');
      const got = await download(`${qdrant.url}/collections/docs/snapshots/${snapshot.name}`, file);
      expect(got).toEqual({ sha256: snapshot.checksum, size: snapshot.size });
    });

    it('keeps writes made after the snapshot out of it', async () => {
      await client.upsert('docs', { wait: true, points: [{ id: 5000, vector: vectors[0] as number[], payload: { late: true } }] });
      await client.delete('docs', { wait: true, points: [5000] });
    });

    it('restores the same points from an upload, with checksum and priority', async () => {
      const response = await upload(`${qdrant.url}/collections/restored/snapshots/upload?priority=snapshot&checksum=${snapshot.checksum}`, file);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ result: true, status: 'ok' });
      expect(await scrollAll(client, 'restored')).toEqual(original);
      expect((await client.getCollection('restored')).config).toEqual((await client.getCollection('docs')).config);
    });

    it('restores the same points by recovering from a URL', async () => {
      const location = `${qdrant.url}/collections/docs/snapshots/${snapshot.name}`;
      expect(await client.recoverSnapshot('from-url', { location, priority: 'snapshot', checksum: snapshot.checksum })).toBe(true);
      expect(await scrollAll(client, 'from-url')).toEqual(original);
      const top = await client.query('from-url', { query: vectors[7] as number[], limit: 5 });
      expect(top.points.map((p) => p.id)).toEqual((await client.query('docs', { query: vectors[7] as number[], limit: 5 })).points.map((p) => p.id));
    });

    it('recovers over an existing collection from a file:// location inside the snapshots directory', async () => {
      await client.upsert('from-url', { wait: true, points: [{ id: 7777, vector: vectors[0] as number[] }] });
      const location = `file://${join(qdrant.snapshotsDir, 'docs', snapshot.name)}`;
      expect(await client.recoverSnapshot('from-url', { location, priority: 'snapshot' })).toBe(true);
      expect((await client.count('from-url')).count).toBe(COUNT);
      await expect(client.recoverSnapshot('from-url', { location: `file://${file}`, priority: 'snapshot' })).rejects.toMatchObject({ status: 400 });
    });

    it('rejects a checksum mismatch and a corrupted snapshot', async () => {
      const wrong = '0'.repeat(64);
      const response = await upload(`${qdrant.url}/collections/bad/snapshots/upload?priority=snapshot&checksum=${wrong}`, file);
      expect(response.status).toBe(400);
      const body = (await response.json()) as Schemas['ErrorResponse'];
      expect(body.status?.error).toContain('checksum mismatch');
      const location = `${qdrant.url}/collections/docs/snapshots/${snapshot.name}`;
      await expect(client.recoverSnapshot('bad', { location, priority: 'snapshot', checksum: wrong })).rejects.toMatchObject({ status: 400 });
      const bytes = await readFile(file);
      const middle = Math.floor(bytes.length / 2);
      bytes[middle] = bytes[middle]! ^ 0xff;
      const corrupt = join(work, 'corrupt.snapshot');
      await writeFile(corrupt, bytes);
      const rejected = await upload(`${qdrant.url}/collections/bad/snapshots/upload?priority=snapshot`, corrupt);
      expect(rejected.status).toBe(400);
      expect(await client.collectionExists('bad')).toEqual({ exists: false });
    });

    it('accepts wait=false with 202 and creates the snapshot shortly after', async () => {
      const response = await fetch(`${qdrant.url}/collections/docs/snapshots?wait=false`, { method: 'POST' });
      expect(response.status).toBe(202);
      expect(await response.json()).toMatchObject({ status: 'accepted' });
      for (let tries = 0; (await client.listSnapshots('docs')).length < 2; tries++) {
        expect(tries).toBeLessThan(100);
        await new Promise((r) => setTimeout(r, 20));
      }
    });

    it('deletes snapshots', async () => {
      for (const s of await client.listSnapshots('docs')) expect(await client.deleteSnapshot('docs', s.name)).toBe(true);
      expect(await client.listSnapshots('docs')).toEqual([]);
      await expect(client.deleteSnapshot('docs', snapshot.name)).rejects.toMatchObject({ status: 404 });
      expect((await fetch(`${qdrant.url}/collections/docs/snapshots/${snapshot.name}`)).status).toBe(404);
    });
  });

  it('snapshots and recovers one shard', async () => {
    const shard = 1;
    const created = await client.createShardSnapshot('docs', shard, { wait: true });
    expect(created?.name).toMatch(/^docs-shard-1-/);
    expect(await client.listShardSnapshots('docs', shard)).toEqual([created]);
    const file = join(work, 'shard.snapshot');
    const got = await download(`${qdrant.url}/collections/docs/shards/${shard}/snapshots/${created?.name}`, file);
    expect(got.sha256).toBe(created?.checksum);
    const before = await scrollAll(client, 'docs');
    const inShard = await client.count('docs');
    // Points 0..999 split over 3 shards by id: shard 1 holds ids with id % 3 === 1.
    await client.delete('docs', { wait: true, points: before.map((p) => p.id).filter((id) => (id as number) % 3 === shard) });
    expect((await client.count('docs')).count).toBe(inShard.count - 333);
    const response = await upload(`${qdrant.url}/collections/docs/shards/${shard}/snapshots/upload?priority=snapshot&checksum=${created?.checksum}`, file);
    expect(response.status).toBe(200);
    expect(await scrollAll(client, 'docs')).toEqual(before);
    expect(await client.deleteShardSnapshot('docs', shard, created?.name as string, { wait: true })).toBe(true);
    await expect(client.createShardSnapshot('docs', 7, { wait: true })).rejects.toMatchObject({ status: 404 });
  });

  it('creates, renames and deletes aliases atomically', async () => {
    expect(await client.updateCollectionAliases({ actions: [{ create_alias: { collection_name: 'docs', alias_name: 'live' } }] })).toBe(true);
    expect(await client.getAliases()).toEqual({ aliases: [{ alias_name: 'live', collection_name: 'docs' }] });
    expect((await client.getCollection('live')).points_count).toBe(COUNT);
    // The rollback path: switch the alias to the restored collection in one request.
    await client.updateCollectionAliases({
      actions: [{ delete_alias: { alias_name: 'live' } }, { create_alias: { collection_name: 'restored', alias_name: 'live' } }],
    });
    expect(await client.getCollectionAliases('restored')).toEqual({ aliases: [{ alias_name: 'live', collection_name: 'restored' }] });
    expect(await client.getCollectionAliases('docs')).toEqual({ aliases: [] });
    await client.updateCollectionAliases({ actions: [{ rename_alias: { old_alias_name: 'live', new_alias_name: 'previous' } }] });
    expect((await client.getAliases()).aliases).toEqual([{ alias_name: 'previous', collection_name: 'restored' }]);
    // A failing action leaves every alias as it was.
    await expect(
      client.updateCollectionAliases({ actions: [{ delete_alias: { alias_name: 'previous' } }, { delete_alias: { alias_name: 'missing' } }] }),
    ).rejects.toMatchObject({ status: 404 });
    expect((await client.getAliases()).aliases).toHaveLength(1);
    await client.deleteCollection('restored');
    expect((await client.getAliases()).aliases).toEqual([]);
  });

  it('answers a missing collection with the error envelope and 404', async () => {
    await expect(client.getCollection('missing')).rejects.toMatchObject({ status: 404 });
    const response = await fetch(`${qdrant.url}/collections/missing/points/scroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(404);
    const body = (await response.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['status', 'time']);
    expect(body['status']).toEqual({ error: 'Not found: Collection `missing` doesn\'t exist!' });
    expect(typeof body['time']).toBe('number');
  });

  it('injects failures, hangs and delays', async () => {
    qdrant.faults.failNext(1, 503);
    await expect(client.getCollections()).rejects.toMatchObject({ status: 503 });
    expect((await client.getCollections()).collections.length).toBeGreaterThan(0);

    qdrant.faults.hang('/collections/docs/snapshots');
    const impatient = new QdrantClient({ url: qdrant.url, checkCompatibility: false, timeout: 200 });
    await expect(impatient.createSnapshot('docs', { wait: true })).rejects.toThrow();
    expect(await impatient.collectionExists('docs')).toEqual({ exists: true });
    qdrant.faults.hang(null);

    qdrant.faults.delayMs(150);
    const started = Date.now();
    await client.collectionExists('docs');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    qdrant.faults.reset();
    // The hung request was served once released: clean up what it created.
    for (let tries = 0; (await client.listSnapshots('docs')).length === 0 && tries < 50; tries++) await new Promise((r) => setTimeout(r, 20));
    for (const s of await client.listSnapshots('docs')) await client.deleteSnapshot('docs', s.name);
    expect(qdrant.requests().some((r) => r.status === 503)).toBe(true);
  });
});

describe('the double\'s streaming multipart reader', () => {
  it('extracts a field whose delimiter is split across one-byte chunks', async () => {
    const { readMultipartField } = await import('../src/qdrant-double/multipart.js');
    const { PassThrough } = await import('node:stream');
    const content = Buffer.from('abc\r\n--notquite\r\nxyz'.repeat(50));
    const body = Buffer.concat([
      Buffer.from('--BOUND\r\nContent-Disposition: form-data; name="other"\r\n\r\nskip me\r\n'),
      Buffer.from('--BOUND\r\nContent-Disposition: form-data; name="snapshot"; filename="s"\r\nContent-Type: application/octet-stream\r\n\r\n'),
      content,
      Buffer.from('\r\n--BOUND--\r\n'),
    ]);
    async function* oneByte() {
      for (const byte of body) yield Buffer.from([byte]);
    }
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await readMultipartField(oneByte(), 'BOUND', 'snapshot', out);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });
});
