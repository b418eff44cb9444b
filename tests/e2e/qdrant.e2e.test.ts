// Qdrant end to end: every service a real process, NATS and storage real, Qdrant the test double
// (a real Qdrant image with TIDEMARK_TEST_PROVIDER=containers, where the fault tests need the double).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QdrantClient } from '@qdrant/js-client-rest';
import type { Manifest } from '@tidemark/contracts';
import { testProvider } from '@tidemark/testkit';
import { Stack } from './stack.js';

const COLLECTION = 'docs';
const DIM = 16;
const vectorOf = (i: number) => Array.from({ length: DIM }, (_, k) => Math.sin(i * (k + 1)));

interface PointView { id: string | number; vector: unknown; payload: unknown }

async function allPoints(client: QdrantClient, collection: string): Promise<PointView[]> {
  const points: PointView[] = [];
  let offset: string | number | undefined | null;
  do {
    const page = await client.scroll(collection, { limit: 500, with_payload: true, with_vector: true, ...(offset != null ? { offset } : {}) });
    for (const p of page.points) points.push({ id: p.id, vector: p.vector, payload: p.payload });
    offset = page.next_page_offset as string | number | null | undefined;
  } while (offset != null);
  return points.sort((a, b) => Number(a.id) - Number(b.id));
}

describe('qdrant backups end to end', () => {
  let stack: Stack;
  let source: QdrantClient;
  const publish = (subject: string, body: unknown) => stack.nc.publish(subject, new TextEncoder().encode(JSON.stringify(body)));
  const manifestOf = async (artifactId: string) =>
    JSON.parse(await readFile(join(stack.storageRoot, 'artifacts', 'qdrant', 'vectors', artifactId, 'manifest.json'), 'utf8')) as Manifest;

  beforeAll(async () => {
    stack = await Stack.start({ storage: 'fs', encrypt: true, qdrant: true });
    await stack.pg.createDatabase('app');
    source = new QdrantClient({ url: stack.qdrant!.url, checkCompatibility: false });
    await source.createCollection(COLLECTION, { vectors: { size: DIM, distance: 'Cosine' } });
    const points = Array.from({ length: 2000 }, (_, i) => ({ id: i + 1, vector: vectorOf(i + 1), payload: { title: `doc ${i + 1}`, updatedAt: 1000 } }));
    for (let i = 0; i < points.length; i += 500) await source.upsert(COLLECTION, { wait: true, points: points.slice(i, i + 500) });
    await stack.startAll();
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('a snapshot is stored, proven by a restore into a scratch collection, and leaves no snapshot behind', async () => {
    publish('backup.requested.qdrant.vectors', { kind: 'snapshot', requestId: 'q-snap' });
    const stored = await stack.waitFor('artifact.stored.qdrant.vectors', (e) => e.data.requestId === 'q-snap', 60_000);
    const artifactId = stored.data.artifactId as string;
    const passed = await stack.waitFor('verify.passed.qdrant.vectors', (e) => e.data.artifactId === artifactId, 90_000);
    expect(passed.data.checks).toBeInstanceOf(Array);
    const manifest = await manifestOf(artifactId);
    expect(manifest.kind).toBe('snapshot');
    expect((manifest.source as { pointsCount: number }).pointsCount).toBe(2000);
    expect(await source.listSnapshots(COLLECTION)).toEqual([]);
    const sandbox = new QdrantClient({ url: stack.qdrantSandbox!.url, checkCompatibility: false });
    expect((await sandbox.getCollections()).collections).toEqual([]);
  });

  it('an export and an incremental chain restore into a new collection with identical points', async () => {
    publish('backup.requested.qdrant.vectors', { kind: 'export', requestId: 'q-export', collections: [COLLECTION] });
    const full = await stack.waitFor('artifact.stored.qdrant.vectors', (e) => e.data.requestId === 'q-export', 60_000);
    await stack.waitFor('verify.passed.qdrant.vectors', (e) => e.data.artifactId === full.data.artifactId, 90_000);
    // Change the collection: update 100 points, add 30, delete 50.
    await source.upsert(COLLECTION, {
      wait: true,
      points: [
        ...Array.from({ length: 100 }, (_, i) => ({ id: i + 1, vector: vectorOf(5000 + i), payload: { title: `updated ${i + 1}`, updatedAt: 2000 } })),
        ...Array.from({ length: 30 }, (_, i) => ({ id: 3000 + i, vector: vectorOf(3000 + i), payload: { title: `new ${i}`, updatedAt: 2000 } })),
      ],
    });
    await source.delete(COLLECTION, { wait: true, points: Array.from({ length: 50 }, (_, i) => 1000 + i) });
    publish('backup.requested.qdrant.vectors', { kind: 'incremental', requestId: 'q-incremental', collections: [COLLECTION] });
    const delta = await stack.waitFor('artifact.stored.qdrant.vectors', (e) => e.data.requestId === 'q-incremental', 60_000);
    const deltaId = delta.data.artifactId as string;
    await stack.waitFor('verify.passed.qdrant.vectors', (e) => e.data.artifactId === deltaId, 90_000);
    expect((await manifestOf(deltaId)).parentId).toBe(full.data.artifactId);

    publish('restore.requested.qdrant.vectors', { requestId: 'q-restore', artifactId: deltaId, intoCollection: 'docs_copy' });
    await stack.waitFor('restore.completed.qdrant.vectors', (e) => e.data.requestId === 'q-restore', 90_000);
    const restored = await allPoints(source, 'docs_copy');
    const original = await allPoints(source, COLLECTION);
    expect(restored).toHaveLength(1980);
    expect(restored).toEqual(original);
  });

  it('refuses to restore over an existing collection without the overwrite flag', async () => {
    publish('restore.requested.qdrant.vectors', { requestId: 'q-over', collection: COLLECTION, intoCollection: COLLECTION });
    const failed = await stack.waitFor('restore.failed.qdrant.vectors', (e) => e.data.requestId === 'q-over', 60_000);
    expect((failed.data.error as { code: string }).code).toBe('RESTORE_TARGET_EXISTS');
    expect((failed.data.error as { message: string }).message).toMatch(/overwrite/);
  });

  it('with the overwrite flag, a verified restored copy takes the name and the old data is kept as a snapshot', async () => {
    const snapshot = stack.events.find((e) => e.subject === 'artifact.stored.qdrant.vectors' && e.data.requestId === 'q-snap');
    publish('restore.requested.qdrant.vectors', { requestId: 'q-overwrite', artifactId: snapshot!.data.artifactId, intoCollection: 'docs_copy', overwrite: true });
    const done = await stack.waitFor('restore.completed.qdrant.vectors', (e) => e.data.requestId === 'q-overwrite', 90_000);
    expect(done.data.previousDatabaseKeptAs).toMatch(/^snapshot \S+ of collection docs_copy$/);
    expect((await source.getCollectionAliases(done.data.database as string)).aliases).toContainEqual({ alias_name: 'docs_copy', collection_name: done.data.database });
    expect(await allPoints(source, 'docs_copy')).toHaveLength(2000);
  });

  it('a corrupted stored snapshot fails verification and raises an alert', async () => {
    const verifier = stack.processes.find((p) => p.name === 'verifier' && p.child.exitCode === null);
    await verifier?.kill('SIGTERM');
    publish('backup.requested.qdrant.vectors', { kind: 'snapshot', requestId: 'q-corrupt', collections: [COLLECTION] });
    const stored = await stack.waitFor('artifact.stored.qdrant.vectors', (e) => e.data.requestId === 'q-corrupt', 60_000);
    const artifactId = stored.data.artifactId as string;
    const path = join(stack.storageRoot, (await manifestOf(artifactId)).data.key);
    const bytes = await readFile(path);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(path, bytes);
    await stack.startService('verifier');
    const failed = await stack.waitFor('verify.failed.qdrant.vectors', (e) => e.data.artifactId === artifactId, 90_000);
    expect((failed.data.error as { code: string }).code).toMatch(/^INTEGRITY_/);
    await stack.waitFor('alert.critical.verify_failed', (e) => e.data.artifactId === artifactId);
  });

  it.runIf(testProvider() === 'local')('a failing Qdrant ends in a clear backup.failed and an alert, with nothing half-stored', async () => {
    stack.qdrant!.faults.failNext(10_000, 503);
    try {
      publish('backup.requested.qdrant.vectors', { kind: 'snapshot', requestId: 'q-down', collections: [COLLECTION] });
      const failed = await stack.waitFor('backup.failed.qdrant.vectors', (e) => e.data.requestId === 'q-down' && e.data.final === true, 120_000);
      expect((failed.data.error as { retryable: boolean }).retryable).toBe(true);
      const attempts = stack.events.filter((e) => e.subject === 'backup.failed.qdrant.vectors' && e.data.requestId === 'q-down');
      expect(attempts.length).toBeGreaterThan(1);
      await stack.waitFor('alert.critical.backup_failed', (e) => e.data.requestId === 'q-down');
    } finally {
      stack.qdrant!.faults.reset();
    }
    expect(stack.events.some((e) => e.subject === 'artifact.stored.qdrant.vectors' && e.data.requestId === 'q-down')).toBe(false);
    expect(await source.listSnapshots(COLLECTION)).toEqual([]);
  });

  it.runIf(testProvider() === 'local')('a hanging Qdrant times out, is retried, and ends in a clear backup.failed', async () => {
    stack.qdrant!.faults.hang(`/collections/${COLLECTION}/points/count`);
    try {
      publish('backup.requested.qdrant.vectors', { kind: 'export', requestId: 'q-hang', collections: [COLLECTION] });
      const failed = await stack.waitFor('backup.failed.qdrant.vectors', (e) => e.data.requestId === 'q-hang' && e.data.final === true, 120_000);
      const error = failed.data.error as { code: string; message: string; retryable: boolean };
      expect(['SOURCE_UNAVAILABLE', 'TIMEOUT', 'BREAKER_OPEN']).toContain(error.code);
      expect(error.retryable).toBe(true);
    } finally {
      stack.qdrant!.faults.reset();
    }
    expect(stack.events.some((e) => e.subject === 'artifact.stored.qdrant.vectors' && e.data.requestId === 'q-hang')).toBe(false);
  });
});
