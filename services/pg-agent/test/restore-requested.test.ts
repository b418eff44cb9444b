import { describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore, TidemarkError } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import { handleRestoreRequested as handleRestoreRequestedUnsettled, type RestoreDeps } from '../src/handlers/restore-requested.js';
import { pickArtifact } from '../src/restore/logical.js';
import { fakeCluster, recordingPublisher, TEST_CONFIG, TEST_KEY_HEX, testContext } from './fakes.js';
import { settling } from '@tidemark/testkit';
import type { EventPublisher } from '@tidemark/runtime';
const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

const dumpBytes = Buffer.from('PGDMP restore me '.repeat(2000));

async function setup() {
  const cluster = fakeCluster(dumpBytes);
  const publisher = recordingPublisher();
  const store = new ArtifactStore(createMemoryBackend());
  const deps: RestoreDeps = {
    config: parseConfig(TEST_CONFIG),
    store,
    clusterFor: () => cluster,
    publisher,
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'agent-1', version: '0.1.0' },
    clock: () => new Date('2025-02-03T04:05:06Z'),
  };
  await handleBackupRequested(RequestBackup.parse({ requestId: 'older' }), deps, testContext({ storedAt: new Date('2025-01-01T00:00:00Z') }));
  await handleBackupRequested(RequestBackup.parse({ requestId: 'newer' }), deps, testContext({ storedAt: new Date('2025-01-02T00:00:00Z') }));
  publisher.published.length = 0;
  const [newest, older] = await store.listManifests({ engine: 'pg', target: 'main' });
  return { cluster, publisher, store, deps, newest: newest!, older: older! };
}

const restoreCtx = (overrides = {}) => testContext({ subject: 'restore.requested.pg.main', storedAt: new Date('2025-02-03T04:00:00Z'), ...overrides });

describe('restore.requested handler', () => {
  it('prefers the newest verified artifact, else the newest', async () => {
    const { store, newest, older } = await setup();
    expect((await pickArtifact(store, 'main', undefined)).id).toBe(newest.id);
    await store.writeVerification(older, { artifactId: older.id, status: 'passed', verifiedAt: new Date().toISOString(), durationMs: 1, checks: [] });
    expect((await pickArtifact(store, 'main', undefined)).id).toBe(older.id);
    await expect(pickArtifact(store, 'main', 'missing')).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
  });

  it('restores into a new timestamped database by default', async () => {
    const { cluster, publisher, deps, newest } = await setup();
    const outcome = await handleRestoreRequested(RequestRestore.parse({}), deps, restoreCtx());
    expect(outcome).toEqual({ type: 'ack' });
    expect(cluster.databases.get('app_restore_20250203040000')?.equals(dumpBytes)).toBe(true);
    expect(publisher.subjects()).toEqual(['restore.started.pg.main', 'restore.completed.pg.main']);
    expect(publisher.published[1]?.event).toMatchObject({ artifactId: newest.id, database: 'app_restore_20250203040000' });
  });

  it('rejects an unknown target as a command: no restore.failed, so no critical alert', async () => {
    const { publisher, deps } = await setup();
    const outcome = await handleRestoreRequested(RequestRestore.parse({}), deps, restoreCtx({ subject: 'restore.requested.pg.nosuch' }));
    expect(outcome).toMatchObject({ type: 'reject', error: { code: 'TARGET_UNKNOWN', message: expect.stringContaining('no pg target named "nosuch"') } });
    expect(publisher.published).toHaveLength(0);
  });

  it('says on the last attempt of a restore that it gave up and how to ask again', async () => {
    const { cluster, publisher, deps } = await setup();
    cluster.databaseExists = async () => {
      throw new TidemarkError('SOURCE_UNAVAILABLE', 'checking the database: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433)');
    };
    const retried = await handleRestoreRequested(RequestRestore.parse({}), deps, restoreCtx({ attempt: 1, maxDeliver: 3 }));
    expect(retried.type).toBe('nak');
    expect(publisher.published).toHaveLength(0);
    const final = await handleRestoreRequested(RequestRestore.parse({}), deps, restoreCtx({ attempt: 3, maxDeliver: 3 }));
    expect(final.type).toBe('term');
    expect(publisher.published.at(-1)).toMatchObject({
      subject: 'restore.failed.pg.main',
      event: {
        error: {
          code: 'SOURCE_UNAVAILABLE',
          message: 'gave up after 3 attempts: checking the database: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433). '
            + 'Fix the cause and request the restore again (`tidemark restore pg main` with the same options).',
        },
      },
    });
  });

  it('refuses to restore over an existing database without overwrite', async () => {
    const { cluster, publisher, deps } = await setup();
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app' }), deps, restoreCtx());
    expect(outcome.type).toBe('term');
    expect(publisher.published).toHaveLength(1);
    expect(publisher.published[0]).toMatchObject({ subject: 'restore.failed.pg.main', event: { database: 'app', error: { code: 'RESTORE_TARGET_EXISTS' } } });
    expect(cluster.calls.filter((c) => !c.startsWith('dump'))).toEqual([]);
  });

  it('with overwrite, restores beside the database and swaps it in, keeping the old one', async () => {
    const { cluster, publisher, deps } = await setup();
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app', overwrite: true }), deps, restoreCtx());
    expect(outcome).toEqual({ type: 'ack' });
    expect(cluster.databases.get('app')?.equals(dumpBytes)).toBe(true);
    expect(cluster.databases.has('app_pre_restore_20250203040506')).toBe(true);
    expect(publisher.published.at(-1)?.event).toMatchObject({ database: 'app', previousDatabaseKeptAs: 'app_pre_restore_20250203040506' });
  });

  it('with overwrite, a failed restore drops the scratch database and leaves the original alone', async () => {
    const { cluster, publisher, deps } = await setup();
    cluster.failRestoreWith = new TidemarkError('RESTORE_FAILED', 'pg_restore exited with code 1');
    const original = cluster.databases.get('app');
    const outcome = await handleRestoreRequested(RequestRestore.parse({ intoDatabase: 'app', overwrite: true }), deps, restoreCtx());
    expect(outcome.type).toBe('term');
    expect(cluster.databases.get('app')).toBe(original);
    expect([...cluster.databases.keys()].sort()).toEqual(['app']);
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.pg.main', event: { error: { code: 'RESTORE_FAILED' } } });
  });

  it.each([
    { intoDatabase: 'app_copy', overwrite: false, keptAs: undefined },
    { intoDatabase: 'app', overwrite: true, keptAs: 'app_pre_restore_20250203040506' },
  ])('a redelivery of a restore into $intoDatabase that finished but was not announced (nats down) announces it: no second restore, no failure', async ({ intoDatabase, overwrite, keptAs }) => {
    const { cluster, publisher, deps, newest } = await setup();
    const natsDown: EventPublisher = {
      publish: (subject, schema, event, msgId) =>
        subject.startsWith('restore.completed.')
          ? Promise.reject(new TidemarkError('BUS_UNAVAILABLE', `publishing to ${subject} failed: TIMEOUT; check that nats and the stream are up`))
          : publisher.publish(subject, schema, event, msgId),
    };
    const command = RequestRestore.parse({ requestId: 'restore-1', intoDatabase, overwrite });
    // Thrown: the runner retries it (a retryable error, without a failure report).
    await expect(handleRestoreRequested(command, { ...deps, publisher: natsDown }, restoreCtx({ attempt: 1 }))).rejects.toMatchObject({ retryable: true });
    expect(await handleRestoreRequested(command, deps, restoreCtx({ attempt: 2 }))).toEqual({ type: 'ack' });
    expect(cluster.calls.filter((c) => c.startsWith('restore '))).toHaveLength(1);
    expect(cluster.databases.get(intoDatabase)?.equals(dumpBytes)).toBe(true);
    expect(publisher.subjects()).toEqual(['restore.started.pg.main', 'restore.completed.pg.main']);
    expect(publisher.published[1]?.event).toMatchObject({ requestId: 'restore-1', artifactId: newest.id, database: intoDatabase, ...(keptAs ? { previousDatabaseKeptAs: keptAs } : {}) });
  });

  it('naks while the cluster is unreachable', async () => {
    const { cluster, publisher, deps } = await setup();
    cluster.unavailable = true;
    const outcome = await handleRestoreRequested(RequestRestore.parse({}), deps, restoreCtx());
    expect(outcome.type).toBe('nak');
    expect(publisher.published).toEqual([]);
  });
});
