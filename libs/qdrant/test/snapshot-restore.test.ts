import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { createLogger } from '@tidemark/runtime';
import { collectFacts, compareWithFacts, exportCollection, guardPort, mapQdrantError, restoreChain, snapshotCollection, SINGLE_NODE_COVERAGE } from '../src/index.js';
import { fakePort, seed } from '@tidemark/testkit';

const silent = createLogger('test', { LOG_LEVEL: 'silent' });

describe('snapshots', () => {
  it('streams the snapshot to the store, checks both checksums, and deletes it server-side', async () => {
    const port = fakePort();
    await seed(port, 'docs', 50);
    const outcome = await snapshotCollection(port, { collection: 'docs', store: async (bytes) => (await buffer(bytes)).length });
    expect(outcome.sha256).toBe(outcome.qdrantSha256);
    expect(outcome.stored).toBe(outcome.bytes);
    expect(await port.listSnapshots('docs')).toEqual([]);
  });

  it('deletes the server-side snapshot when storing fails, and when the checksum differs', async () => {
    const port = fakePort();
    await seed(port, 'docs', 50);
    await expect(snapshotCollection(port, { collection: 'docs', store: async () => { throw new TidemarkError('STORAGE_UNAVAILABLE', 'down'); } })).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE' });
    expect(await port.listSnapshots('docs')).toEqual([]);

    const lying = Object.assign(Object.create(port), { createSnapshot: async (name: string) => ({ ...(await port.createSnapshot(name)), checksum: '0'.repeat(64) }) });
    await expect(snapshotCollection(lying, { collection: 'docs', store: async (bytes) => buffer(bytes) })).rejects.toMatchObject({ code: 'INTEGRITY_CHECKSUM_MISMATCH' });
    expect(await port.listSnapshots('docs')).toEqual([]);
  });

  it('counts each answered poll while qdrant creates the snapshot as progress, and stops polling after', async () => {
    const port = fakePort();
    await seed(port, 'docs', 5);
    const told: string[] = [];
    let release: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (release = resolve));
    // The create answers only once two polls were answered: a long create that Qdrant works on.
    const slow = Object.assign(Object.create(port), {
      createSnapshot: async (name: string) => {
        await answered;
        return port.createSnapshot(name);
      },
    });
    const outcome = await snapshotCollection(slow, {
      collection: 'docs',
      store: async (bytes) => (await buffer(bytes)).length,
      pollMs: 5,
      progress: (what) => {
        told.push(what);
        if (told.length === 2) release();
      },
    });
    expect(outcome.bytes).toBeGreaterThan(0);
    expect(told[0]).toMatch(/creating a snapshot of docs/);
    const after = told.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(told.length).toBe(after);
  });

  it('reports no progress while qdrant does not answer the polls', async () => {
    const port = fakePort();
    await seed(port, 'docs', 5);
    const told: string[] = [];
    let polls = 0;
    const silentWhileCreating = Object.assign(Object.create(port), {
      listSnapshots: async (name: string) => {
        polls += 1;
        // The first call (taken before the create) answers; the polls during the create fail.
        if (polls > 1 && polls < 5) throw new TidemarkError('SOURCE_UNAVAILABLE', 'no answer');
        return port.listSnapshots(name);
      },
      createSnapshot: async (name: string) => {
        while (polls < 4) await new Promise((resolve) => setTimeout(resolve, 5));
        return port.createSnapshot(name);
      },
    });
    await snapshotCollection(silentWhileCreating, { collection: 'docs', store: async (bytes) => buffer(bytes), pollMs: 5, progress: (what) => told.push(what) });
    expect(told).toEqual([]);
  });

  it('refuses distributed clusters instead of backing up one node', async () => {
    const port = fakePort();
    await seed(port, 'docs', 5);
    const cluster = Object.assign(Object.create(port), { cluster: async () => ({ enabled: true, peers: 3 }) });
    await expect(snapshotCollection(cluster, { collection: 'docs', store: async (b) => buffer(b) })).rejects.toThrow(/distributed mode with 3 peers/);
  });
});

describe('restore over an existing collection', () => {
  async function exported() {
    const port = fakePort();
    await seed(port, 'docs', 40);
    const bytes = await buffer(exportCollection(port, { collection: 'docs', exportId: 'e0' }).stream);
    return { port, links: [async () => Readable.from([bytes])] };
  }
  const clock = () => new Date('2025-01-02T03:04:05.678Z');

  it('is refused without overwrite', async () => {
    const { port, links } = await exported();
    await expect(restoreChain(port, { collection: 'docs', overwrite: false, links })).rejects.toMatchObject({ code: 'RESTORE_TARGET_EXISTS' });
  });

  it('with overwrite on a collection: restores beside it and leaves the old one untouched (promotion pending)', async () => {
    const { port, links } = await exported();
    await port.deletePoints('docs', [1, 2, 3]);
    const outcome = await restoreChain(port, { collection: 'docs', overwrite: true, links, clock });
    expect(outcome).toMatchObject({ collection: 'docs_restoring_20250102_030405678', previousKeptAs: 'docs', promotion: 'pending', points: 40 });
    expect(port.all('docs')).toHaveLength(37);
  });

  it('with overwrite on an alias: switches the alias and keeps the old collection', async () => {
    const { port, links } = await exported();
    await port.updateAliases([{ op: 'create', alias: 'live', collection: 'docs' }]);
    const outcome = await restoreChain(port, { collection: 'live', overwrite: true, links, clock });
    expect(outcome).toMatchObject({ previousKeptAs: 'docs', promotion: 'switched' });
    expect(port.aliases.get('live')).toBe(outcome.collection);
    expect(await port.collectionExists('docs')).toBe(true);
  });
});

describe('facts', () => {
  it('match on an identical restore and differ on a changed one', async () => {
    const port = fakePort();
    await seed(port, 'docs', 100);
    const facts = await collectFacts(port, 'docs', SINGLE_NODE_COVERAGE, { sampleSize: 20, probes: 3, k: 5 });
    expect(facts).toMatchObject({ qdrantVersion: '1.19.0', pointsCount: 100, sample: { size: 20 }, vectors: [{ name: '', kind: 'dense', size: 8, distance: 'Dot' }] });
    expect(facts.probes).toHaveLength(3);
    const bytes = await buffer(exportCollection(port, { collection: 'docs', exportId: 'e0' }).stream);
    await restoreChain(port, { collection: 'copy', overwrite: false, links: [async () => Readable.from([bytes])] });
    expect((await compareWithFacts(port, 'copy', facts)).every((c) => c.ok)).toBe(true);
    await port.upsert('copy', [{ id: 3, vector: Array(8).fill(0), payload: { changed: true } }]);
    const failed = (await compareWithFacts(port, 'copy', facts)).filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toEqual(expect.arrayContaining(['sample vectors sha256', 'sample payload sha256']));
  });
});

describe('errors and the breaker', () => {
  it('maps unreachable and 5xx to retryable SOURCE_UNAVAILABLE, 4xx to clear non-retryable codes', () => {
    expect(mapQdrantError(new TypeError('fetch failed'), 'scroll')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: true });
    expect(mapQdrantError({ status: 503, data: { status: { error: 'overloaded' } } }, 'scroll')).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: true });
    expect(mapQdrantError({ status: 403 }, 'scroll')).toMatchObject({ code: 'SOURCE_AUTH_FAILED', retryable: false });
    expect(mapQdrantError({ status: 404, data: { status: { error: 'Not found' } } }, 'scroll')).toMatchObject({ code: 'TARGET_UNKNOWN', retryable: false });
    expect(mapQdrantError({ status: 400, data: { status: { error: 'bad vector' } } }, 'upsert').message).toMatch(/rejected upsert \(400\): bad vector/);
    expect(mapQdrantError({ status: 422, data: { status: { error: 'wrong dimension' } } }, 'upsert')).toMatchObject({ code: 'QUERY_FAILED', retryable: false });
  });

  it('opens after repeated 5xx, times out a hanging call, and does not count 404s', async () => {
    const port = fakePort();
    await seed(port, 'docs', 5);
    const guarded = guardPort(port, silent, 'test', { timeoutMs: 100, volumeThreshold: 2, resetTimeoutMs: 60_000 });
    try {
      port.failNext('count', { status: 404 }, 5);
      for (let i = 0; i < 5; i++) await expect(guarded.count('docs')).rejects.toMatchObject({ code: 'TARGET_UNKNOWN' });
      expect(guarded.breakers.quick.state).toBe('closed');
      const hanging = Object.assign(Object.create(port), { version: () => new Promise(() => undefined) });
      const slowGuard = guardPort(hanging, silent, 'hang', { timeoutMs: 50 });
      await expect(slowGuard.version()).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true });
      slowGuard.shutdown();
      // 404s count as answers in the rolling window: it takes more 502s than 404s to open it.
      port.failNext('count', { status: 502 }, 20);
      const codes: string[] = [];
      for (let i = 0; i < 20 && codes.at(-1) !== 'BREAKER_OPEN'; i++) codes.push(await guarded.count('docs').then(() => 'ok', (e: TidemarkError) => e.code));
      expect(codes.at(0)).toBe('SOURCE_UNAVAILABLE');
      expect(codes.at(-1)).toBe('BREAKER_OPEN');
      expect(guarded.breakers.quick.state).toBe('open');
    } finally {
      guarded.shutdown();
    }
  });
});
