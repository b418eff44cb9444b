import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RequestBackup, TidemarkError } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend, newArtifactId, type StorageBackend } from '@tidemark/storage';
import { decodeStream, loadKeyRing } from '@tidemark/pipeline';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import type { BackupDeps } from '../src/backup/take-backup.js';
import { fakeCluster, recordingPublisher, SAMPLE_FACTS, TEST_CONFIG, TEST_KEY_HEX, testContext, type FakeCluster } from './fakes.js';
import { settling } from '@tidemark/testkit';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);

const dumpBytes = Buffer.from('PGDMP fake custom-format dump '.repeat(5000));

function setup(options: { backend?: StorageBackend; cluster?: FakeCluster; withKey?: boolean } = {}) {
  const cluster = options.cluster ?? fakeCluster(dumpBytes);
  const publisher = recordingPublisher();
  const store = new ArtifactStore(options.backend ?? createMemoryBackend());
  const deps: BackupDeps = {
    config: parseConfig(TEST_CONFIG),
    store,
    clusterFor: () => cluster,
    publisher,
    keys: loadKeyRing(options.withKey === false ? {} : { TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'agent-1', version: '0.1.0' },
    clock: () => new Date('2025-01-02T03:04:06Z'),
  };
  return { cluster, publisher, store, deps };
}

const command = (fields: Record<string, unknown> = {}) => RequestBackup.parse(fields);

describe('backup.requested handler', () => {
  it('dumps, stores encrypted, commits the manifest and announces it', async () => {
    const { publisher, store, deps } = setup();
    const ctx = testContext();
    const outcome = await handleBackupRequested(command({ reason: 'before migration' }), deps, ctx);
    expect(outcome).toEqual({ type: 'ack' });

    const artifactId = newArtifactId('js:42', ctx.storedAt);
    const manifest = await store.readManifest('pg', 'main', artifactId);
    expect(manifest).toMatchObject({ engine: 'pg', target: 'main', kind: 'logical', format: 'pg_dump-custom', requestId: 'js:42', verify: true, reason: 'before migration' });
    expect(manifest?.source).toEqual(SAMPLE_FACTS);
    expect(manifest?.pipeline.encryption?.keyId).toBeDefined();
    expect(manifest?.data.rawBytes).toBe(dumpBytes.length);

    const decoded = await buffer(decodeStream(await store.openData(manifest!), { pipeline: manifest!.pipeline, sha256: manifest!.data.sha256, storedBytes: manifest!.data.storedBytes }, deps.keys));
    expect(decoded.equals(dumpBytes)).toBe(true);

    expect(publisher.subjects()).toEqual(['backup.started.pg.main', 'artifact.stored.pg.main', 'backup.completed.pg.main']);
    expect(publisher.published.map((p) => p.msgId)).toEqual([`started:${artifactId}:1`, `stored:${artifactId}`, `completed:${artifactId}`]);
  });

  it('announces an already committed artifact again without a second dump on redelivery', async () => {
    const { cluster, publisher, deps } = setup();
    await handleBackupRequested(command(), deps, testContext());
    const outcome = await handleBackupRequested(command(), deps, testContext({ attempt: 2 }));
    expect(outcome).toEqual({ type: 'ack' });
    expect(cluster.dumps).toBe(1);
    const stored = publisher.published.filter((p) => p.subject === 'artifact.stored.pg.main');
    expect(stored).toHaveLength(2);
    expect(stored[0]?.msgId).toBe(stored[1]?.msgId);
  });

  it('rejects an unknown target as a command (no backup.failed, so no critical alert), naming the configured targets', async () => {
    const { publisher, deps, cluster } = setup();
    const outcome = await handleBackupRequested(command(), deps, testContext({ subject: 'backup.requested.pg.nope' }));
    expect(outcome).toMatchObject({ type: 'reject', error: { code: 'TARGET_UNKNOWN', retryable: false } });
    expect((outcome as { error: { message: string } }).error.message).toBe(
      'no pg target named "nope" is configured (the configured pg targets are main, plain); check the name, or add the target to tidemark.yaml',
    );
    expect(cluster.dumps).toBe(0);
    expect(publisher.published).toHaveLength(0);
  });

  it('rejects kinds other than logical and base as a command, naming the field', async () => {
    const { publisher, deps } = setup();
    const outcome = await handleBackupRequested(command({ kind: 'snapshot' }), deps, testContext());
    expect(outcome).toMatchObject({ type: 'reject', error: { code: 'COMMAND_INVALID', message: expect.stringMatching(/^kind: /) } });
    expect(publisher.published).toHaveLength(0);
  });

  it('naks a retryable storage failure and reports it as not final', async () => {
    const memory = createMemoryBackend();
    const failingSaves: StorageBackend = {
      properties: memory.properties,
      save: async (_key, body) => {
        if (body instanceof Readable) body.destroy();
        throw new TidemarkError('STORAGE_UNAVAILABLE', 'the fake object store is down');
      },
      open: (key, range) => memory.open(key, range),
      stat: (key) => memory.stat(key),
      list: (prefix) => memory.list(prefix),
      remove: (key) => memory.remove(key),
      close: () => memory.close(),
    };
    const { publisher, deps } = setup({ backend: failingSaves });
    const outcome = await handleBackupRequested(command(), deps, testContext({ attempt: 2 }));
    expect(outcome).toMatchObject({ type: 'nak' });
    expect((outcome as { delayMs: number }).delayMs).toBeGreaterThan(0);
    const failed = publisher.published.find((p) => p.subject === 'backup.failed.pg.main');
    expect(failed?.event).toMatchObject({ final: false, attempt: 2, error: { code: 'STORAGE_UNAVAILABLE', retryable: true } });
    expect((failed?.event as { error: { message: string } }).error.message).toBe('the fake object store is down; attempt 2 of 5, it will be retried');
  });

  it('says on the last attempt that it gave up, after how many attempts, and what to do', async () => {
    const cluster = fakeCluster(dumpBytes);
    cluster.failDumpWith = new TidemarkError('SOURCE_UNAVAILABLE', 'pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433)');
    const { publisher, deps } = setup({ cluster });
    const outcome = await handleBackupRequested(command(), deps, testContext({ attempt: 5, maxDeliver: 5 }));
    expect(outcome.type).toBe('term');
    const failed = publisher.published.at(-1)?.event as { final: boolean; error: { message: string } };
    expect(failed.final).toBe(true);
    expect(failed.error.message).toBe(
      'gave up after 5 attempts: pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433). '
      + 'Fix the cause and request the backup again (`tidemark backup pg main`).',
    );
    expect(failed.error.message).not.toMatch(/will be retried/);
  });

  it('gives up on a failing dump at the last delivery', async () => {
    const cluster = fakeCluster(dumpBytes);
    cluster.failDumpWith = new TidemarkError('DUMP_FAILED', 'pg_dump exited with code 1: pg_dump: error: boom');
    const { publisher, deps } = setup({ cluster });
    const outcome = await handleBackupRequested(command(), deps, testContext({ attempt: 5, maxDeliver: 5 }));
    expect(outcome.type).toBe('term');
    expect(publisher.published.at(-1)?.event).toMatchObject({ final: true, error: { code: 'DUMP_FAILED' } });
  });

  it('fails finally when encryption is required and no key is configured', async () => {
    const { publisher, deps, cluster } = setup({ withKey: false });
    const outcome = await handleBackupRequested(command(), deps, testContext());
    expect(outcome.type).toBe('term');
    expect(cluster.dumps).toBe(0);
    expect(publisher.published[0]?.event).toMatchObject({ final: true, error: { code: 'CONFIG_INVALID' } });
  });

  it('uses the target compression and honours the verify override of the command', async () => {
    const { store, deps } = setup();
    const ctx = testContext({ subject: 'backup.requested.pg.plain' });
    await handleBackupRequested(command({ requestId: 'r-1', verify: false }), deps, ctx);
    const manifest = await store.readManifest('pg', 'plain', newArtifactId('r-1', ctx.storedAt));
    expect(manifest?.pipeline).toMatchObject({ compression: 'gzip', encryption: null });
    expect(manifest?.verify).toBe(false);
  });

  it('hands the command back when shut down mid-dump', async () => {
    const controller = new AbortController();
    const cluster = fakeCluster(dumpBytes);
    cluster.failDumpWith = new TidemarkError('SHUTTING_DOWN', 'interrupted');
    controller.abort(new TidemarkError('SHUTTING_DOWN', 'the service is shutting down'));
    const { deps } = setup({ cluster });
    const outcome = await handleBackupRequested(command(), deps, testContext({ signal: controller.signal }));
    expect(outcome).toEqual({ type: 'nak', delayMs: 0 });
  });
});
