// The storage service against a real nats-server and the filesystem backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, type NatsConnection } from 'nats';
import {
  ArtifactPruned, ArtifactStored, CONTENT_TYPE_HEADER, MSGPACK, MSG_ID_HEADER, STREAMS, decode, encode, filters, parseMessage, subjects,
} from '@tidemark/contracts';
import { createEventPublisher, createLogger, ensureStreams } from '@tidemark/runtime';
import { ArtifactStore, createFsBackend, type StorageBackend } from '@tidemark/storage';
import { makeTempDir, removeTempDir, startNats, type NatsTestServer } from '@tidemark/testkit';
import { startStorageService, type StorageService } from '../src/service.js';
import { commitArtifact, verification } from './fixtures.js';

const logger = createLogger('storage-it', { TIDEMARK_LOG_LEVEL: 'silent' });
const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000);

describe('storage service (NATS + fs storage)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let root: string;
  let backend: StorageBackend;
  let store: ArtifactStore;
  let service: StorageService;
  const committed: string[] = [];

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    await ensureStreams(await nc.jetstreamManager(), STREAMS);
    root = await makeTempDir('tidemark-storage-it-');
    backend = await createFsBackend({ root });
    store = new ArtifactStore(backend);
    const older = await commitArtifact(store, { requestId: 'it-older', createdAt: hoursAgo(48) });
    const newer = await commitArtifact(store, { requestId: 'it-newer', createdAt: hoursAgo(1) });
    await store.writeVerification(newer, verification(newer.id, 'passed', new Date().toISOString()));
    committed.push(newer.id, older.id);
    service = await startStorageService({
      nc, js: nc.jetstream(), jsm: await nc.jetstreamManager(), publisher: createEventPublisher(nc.jetstream()), logger, store,
      policies: new Map([['pg/main', { keepLast: 2, maxAgeDays: 0 }]]),
      retentionIntervalMs: 3600_000, orphanGraceMinutes: 60, runRetentionPeriodically: false, runChunkGcPeriodically: false,
    });
  });

  afterAll(async () => {
    await service?.stop();
    await nc?.close();
    await backend?.close();
    await server?.stop();
    if (root) await removeTempDir(root);
  });

  const requestJson = async (subject: string, body: string) => {
    const reply = await nc.request(subject, new TextEncoder().encode(body), { timeout: 5000 });
    expect(reply.headers?.get(CONTENT_TYPE_HEADER)).toBe('application/json');
    return JSON.parse(new TextDecoder().decode(reply.data));
  };
  const requestMsgpack = async (subject: string, body: unknown) => {
    const h = headers();
    h.set(CONTENT_TYPE_HEADER, MSGPACK);
    const reply = await nc.request(subject, encode(body), { timeout: 5000, headers: h });
    expect(reply.headers?.get(CONTENT_TYPE_HEADER)).toBe(MSGPACK);
    return decode(reply.data) as any;
  };

  it('lists the artifacts rebuilt from the bucket, newest first, in JSON and msgpack', async () => {
    const viaJson = await requestJson(subjects.catalogList(), '{}');
    expect(viaJson.artifacts.map((a: any) => a.artifactId)).toEqual(committed);
    expect(viaJson.artifacts[0]).toMatchObject({ verification: 'passed', engine: 'pg', target: 'main' });
    expect(viaJson.artifacts[1]).toMatchObject({ verification: 'unverified' });
    const viaMsgpack = await requestMsgpack(subjects.catalogList(), { engine: 'pg', target: 'main', limit: 1 });
    expect(viaMsgpack).toMatchObject({ total: 2, artifacts: [{ artifactId: committed[0] }] });
    // An empty request (nats req catalog.list '') lists everything, in JSON.
    expect((await requestJson(subjects.catalogList(), '')).artifacts).toHaveLength(2);
  });

  it('describes an artifact, and answers unknown ids and bad requests with an error', async () => {
    const described = await requestMsgpack(subjects.catalogDescribe(), { artifactId: committed[0] });
    expect(described).toMatchObject({ manifest: { id: committed[0], requestId: 'it-newer' }, verification: { status: 'passed' }, status: 'passed' });
    expect(await requestJson(subjects.catalogDescribe(), '{"artifactId":"20990101T000000Z-ffffffffff"}')).toMatchObject({ error: { code: 'ARTIFACT_NOT_FOUND' } });
    expect(await requestJson(subjects.catalogDescribe(), '{"artifact":"x"}')).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
    expect(await requestJson(subjects.catalogList(), '{"limit":"many"}')).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
    expect(await requestJson(subjects.catalogList(), '{oops')).toMatchObject({ error: { code: 'COMMAND_UNDECODABLE' } });
  });

  it('picks up a new artifact from artifact.stored by re-reading the bucket', async () => {
    const fresh = await commitArtifact(store, { requestId: 'it-fresh', createdAt: new Date(), verify: false });
    const event: ArtifactStored = {
      schemaVersion: 1, engine: 'pg', target: 'main', requestId: 'it-fresh', occurredAt: new Date().toISOString(), kind: 'logical',
      artifactId: fresh.id, manifestKey: `artifacts/pg/main/${fresh.id}/manifest.json`, storedBytes: fresh.data.storedBytes, sha256: fresh.data.sha256, verify: false,
    };
    await createEventPublisher(nc.jetstream()).publish(subjects.artifactStored('pg', 'main'), ArtifactStored, event, `stored:${fresh.id}`);
    await expect.poll(async () => (await requestJson(subjects.catalogList(), '{}')).artifacts[0]?.artifactId, { timeout: 10_000 }).toBe(fresh.id);
    expect((await requestJson(subjects.catalogList(), '{}')).artifacts[0]).toMatchObject({ verification: 'not-required' });
    committed.unshift(fresh.id);
  });

  it('prunes beyond keepLast through retention and publishes ArtifactPruned', async () => {
    const pruned: Array<{ event: ArtifactPruned; msgId: string | undefined }> = [];
    const sub = nc.subscribe(filters.artifactPruned, {
      callback: (_e, msg) => pruned.push({ event: parseMessage(ArtifactPruned, decode(msg.data, msg.headers)), msgId: msg.headers?.get(MSG_ID_HEADER) }),
    });
    await nc.flush();
    const result = await service.retentionPass();
    const oldest = committed[2] as string;
    expect(result.pruned.map((p) => p.artifactId)).toEqual([oldest]);
    expect(await store.readManifest('pg', 'main', oldest)).toBeUndefined();
    await expect.poll(() => pruned.length, { timeout: 5000 }).toBe(1);
    expect(pruned[0]).toMatchObject({ event: { artifactId: oldest, engine: 'pg', target: 'main', reason: expect.stringContaining('keepLast 2') }, msgId: `pruned:${oldest}` });
    expect((await requestJson(subjects.catalogList(), '{}')).artifacts.map((a: any) => a.artifactId)).toEqual(committed.slice(0, 2));
    sub.unsubscribe();
  });

  it('answers catalog.tree, and collects an empty chunk repository without deleting anything', async () => {
    expect(await requestJson(subjects.catalogTree(), '{"target":"docs"}')).toEqual({
      error: { code: 'ARTIFACT_NOT_FOUND', retryable: false, message: 'target "docs" has no committed files snapshot yet (engine files); back it up first' },
    });
    expect(await requestJson(subjects.catalogTree(), '{"path":"x"}')).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
    const collected = await service.chunkGcPass();
    expect(collected).toMatchObject({ ok: true, snapshots: 0, report: { packs: 0, packsDeleted: [] } });
  });
});
