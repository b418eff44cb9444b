// The verifier's Qdrant path against the in-memory fake port and the memory storage backend.
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { TidemarkError, type Manifest, type QdrantSourceFacts } from '@tidemark/contracts';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { recordingPublisher, storedEvent, testContextFor, fakePort, seed, type FakePort } from '@tidemark/testkit';
import { handleArtifactStored as handleArtifactStoredUnsettled, type VerifierDeps } from '../src/handlers/artifact-stored.js';
import { storeExportArtifact, storeIncrementalArtifact, storeSnapshotArtifact } from './qdrant-artifacts.js';
import { settling } from '@tidemark/testkit';
const handleArtifactStored = settling(handleArtifactStoredUnsettled);

const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '44'.repeat(32) });
const SNAPSHOT_ID = '20250101T000000Z-aaaaaaaaaa';
const SCRATCH = 'tidemark_verify_aaaaaaaaaa_abc123';

const ctx = testContextFor('artifact.stored.qdrant.vectors');

/** A sandbox fake that records upload options and every collection it ever held. */
function sandbox(): { port: FakePort; uploads: { name: string; options: unknown }[]; created: Set<string> } {
  const port = fakePort();
  const uploads: { name: string; options: unknown }[] = [];
  const created = new Set<string>();
  const upload = port.uploadSnapshot;
  port.uploadSnapshot = async (name, body, options) => {
    uploads.push({ name, options });
    created.add(name);
    return upload(name, body, options);
  };
  const create = port.createCollection;
  port.createCollection = async (name, body) => {
    created.add(name);
    return create(name, body);
  };
  return { port, uploads, created };
}

async function setup(options: { noSandbox?: boolean; edit?: (facts: QdrantSourceFacts) => QdrantSourceFacts } = {}) {
  const source = fakePort();
  await seed(source, 'docs', 200);
  const store = new ArtifactStore(createMemoryBackend());
  let manifest = await storeSnapshotArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: SNAPSHOT_ID });
  if (options.edit) {
    manifest = { ...manifest, source: options.edit(manifest.source as unknown as QdrantSourceFacts) as unknown as Record<string, unknown> };
    await store.commit(manifest);
  }
  const box = sandbox();
  const publisher = recordingPublisher();
  const { published } = publisher;
  const deps: VerifierDeps = {
    store, sandbox: undefined, sandboxQdrant: options.noSandbox ? undefined : box.port, publisher, keys,
    clock: () => new Date('2025-01-01T00:01:00Z'), randomSuffix: () => 'abc123',
  };
  return { source, store, manifest, box, published, deps };
}

const failedChecks = (event: Record<string, unknown> | undefined) => (event?.checks as { name: string; ok: boolean }[]).filter((c) => !c.ok).map((c) => c.name);

describe('artifact.stored handler (verifier), qdrant artifacts', () => {
  it('restores a snapshot into a scratch collection by upload (priority and checksum passed), compares, and deletes it', async () => {
    const { store, manifest, box, published, deps } = await setup();
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toEqual({ type: 'ack' });
    const facts = manifest.source as unknown as QdrantSourceFacts;
    expect(box.uploads).toEqual([{ name: SCRATCH, options: { checksum: facts.snapshot?.sha256, priority: 'snapshot' } }]);
    expect(box.port.collections.size).toBe(0);
    expect((await store.readVerification(manifest))?.status).toBe('passed');
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ subject: 'verify.passed.qdrant.vectors', msgId: `verify:${manifest.id}` });
    const names = (published[0]?.event.checks as { name: string }[]).map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['points count', 'sample ids', 'sample vectors sha256', 'sample payload sha256']));
    expect(names.filter((n) => n.startsWith('probe ')).length).toBe(facts.probes.length);
    expect(facts.probes.length).toBeGreaterThan(0);
  });

  it('restores an export chain (export + incremental) from the bucket and passes', async () => {
    const source = fakePort();
    await seed(source, 'docs', 120, { ts: 1 });
    const store = new ArtifactStore(createMemoryBackend());
    const full = await storeExportArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: '20250101T000000Z-bbbbbbbbbb' });
    await seed(source, 'docs', 10, { start: 115, ts: 2 });
    await source.deletePoints('docs', [0, 7, 60]);
    const delta = await storeIncrementalArtifact(source, store, keys, full, { collection: 'docs', target: 'vectors', id: '20250101T000100Z-cccccccccc' });
    const box = sandbox();
    const publisher = recordingPublisher();
    const { published } = publisher;
    const deps: VerifierDeps = { store, sandbox: undefined, sandboxQdrant: box.port, publisher, keys, clock: () => new Date(), randomSuffix: () => 'abc123' };
    expect(await handleArtifactStored(storedEvent(delta), deps, ctx())).toEqual({ type: 'ack' });
    expect(published[0]?.subject).toBe('verify.passed.qdrant.vectors');
    expect((published[0]?.event.checks as { name: string; ok: boolean }[])[0]).toMatchObject({ name: 'points count', ok: true, actual: 122 });
    expect([...box.created]).toEqual(['tidemark_verify_cccccccccc_abc123']);
    expect(box.port.collections.size).toBe(0);
  });

  it('fails an export chain whose parent is missing from the bucket, without leaving a scratch collection', async () => {
    const source = fakePort();
    await seed(source, 'docs', 20, { ts: 1 });
    const store = new ArtifactStore(createMemoryBackend());
    const full = await storeExportArtifact(source, store, keys, { collection: 'docs', target: 'vectors', id: '20250101T000000Z-bbbbbbbbbb' });
    const delta = await storeIncrementalArtifact(source, store, keys, full, { collection: 'docs', target: 'vectors', id: '20250101T000100Z-cccccccccc' });
    await store.remove(full);
    const box = sandbox();
    const publisher = recordingPublisher();
    const { published } = publisher;
    const deps: VerifierDeps = { store, sandbox: undefined, sandboxQdrant: box.port, publisher, keys, clock: () => new Date() };
    await handleArtifactStored(storedEvent(delta), deps, ctx());
    expect(published[0]).toMatchObject({ subject: 'verify.failed.qdrant.vectors', event: { error: { code: 'ARTIFACT_NOT_FOUND' } } });
    expect(box.port.collections.size).toBe(0);
  });

  it('fails with the differing checks when the restored copy does not match the manifest', async () => {
    const { store, manifest, box, published, deps } = await setup({
      edit: (facts) => ({ ...facts, pointsCount: facts.pointsCount + 1, sample: { ...facts.sample, vectorsSha256: '0'.repeat(64) } }),
    });
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toEqual({ type: 'ack' });
    const record = await store.readVerification(manifest);
    expect(record).toMatchObject({ status: 'failed', error: { code: 'VERIFY_MISMATCH' } });
    expect(published[0]?.subject).toBe('verify.failed.qdrant.vectors');
    expect(failedChecks(published[0]?.event)).toEqual(['points count', 'sample vectors sha256']);
    expect(box.port.collections.size).toBe(0);
  });

  it('fails with the integrity code when the stored bytes were modified, and deletes the scratch collection', async () => {
    const { store, manifest, box, published, deps } = await setup();
    const original = await buffer(await store.backend.open(manifest.data.key));
    original[Math.floor(original.length / 2)]! ^= 0xff;
    await store.backend.save(manifest.data.key, original);
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toMatchObject({ type: 'term' });
    expect(published[0]?.subject).toBe('verify.failed.qdrant.vectors');
    expect((published[0]?.event.error as { code: string }).code).toMatch(/^INTEGRITY_/);
    expect(box.port.collections.size).toBe(0);
  });

  it('fails with CONFIG_INVALID when no qdrant sandbox is configured', async () => {
    const { manifest, published, deps } = await setup({ noSandbox: true });
    await handleArtifactStored(storedEvent(manifest), deps, ctx());
    expect(published[0]).toMatchObject({ subject: 'verify.failed.qdrant.vectors', event: { error: { code: 'CONFIG_INVALID' } } });
  });

  it('naks while the sandbox is unreachable, fails at the last delivery, and deletes the scratch collection each time', async () => {
    const { manifest, box, published, deps } = await setup();
    const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6333'), { cause: { code: 'ECONNREFUSED' } });
    box.port.failNext('count', refused(), 1);
    expect((await handleArtifactStored(storedEvent(manifest), deps, ctx())).type).toBe('nak');
    expect(published).toEqual([]);
    expect(box.created.size).toBe(1);
    expect(box.port.collections.size).toBe(0);
    box.port.failNext('count', refused(), 1);
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx({ attempt: 5 }))).toMatchObject({ type: 'term' });
    expect(published[0]).toMatchObject({ subject: 'verify.failed.qdrant.vectors', event: { error: { code: 'SANDBOX_UNAVAILABLE', retryable: true } } });
    expect(box.port.collections.size).toBe(0);
  });

  it('refuses a manifest without valid qdrant facts as INTEGRITY_FORMAT', async () => {
    const { store, manifest, published, deps } = await setup();
    const broken: Manifest = { ...manifest, source: { collection: 'docs' } };
    await store.commit(broken);
    await handleArtifactStored(storedEvent(broken), deps, ctx());
    expect(published[0]).toMatchObject({ subject: 'verify.failed.qdrant.vectors', event: { error: { code: 'INTEGRITY_FORMAT' } } });
  });

  it('surfaces a sandbox refusal that is not about reachability as final', async () => {
    const { manifest, box, published, deps } = await setup();
    box.port.failNext('uploadSnapshot', new TidemarkError('QUERY_FAILED', 'qdrant rejected snapshot upload (400)'));
    expect(await handleArtifactStored(storedEvent(manifest), deps, ctx())).toMatchObject({ type: 'term' });
    expect(published[0]).toMatchObject({ subject: 'verify.failed.qdrant.vectors', event: { error: { code: 'QUERY_FAILED' } } });
    expect(box.port.collections.size).toBe(0);
  });
});
