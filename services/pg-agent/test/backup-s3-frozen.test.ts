// A logical backup through the real handler, real PostgreSQL and the production storage wiring
// (openArtifactStore: breaker, retries) into a real S3 server that freezes (SIGSTOP) in the middle
// of the upload and resumes a few seconds later. Before issue 9 the backup hung while S3 was
// frozen and then ended as a final INTERNAL "The operation was aborted"; now it is a retry, and
// the redelivered command stores exactly one artifact.
import { Transform, pipeline, type Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestBackup } from '@tidemark/contracts';
import { parseConfig, storageConfig, type Target } from '@tidemark/config';
import { ArtifactStore, openArtifactStore, type GuardedStore, type StorageBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { pgCluster } from '@tidemark/pg';
import { createLogger } from '@tidemark/runtime';
import { settling, startLocalS3, startPostgres, type LocalS3Endpoint, type PostgresServer } from '@tidemark/testkit';
import { handleBackupRequested as handleBackupRequestedUnsettled } from '../src/handlers/backup-requested.js';
import type { BackupDeps } from '../src/backup/take-backup.js';
import { recordingPublisher, TEST_KEY_HEX, testContext } from './fakes.js';
import { pgConfigYaml } from './fixture.js';

const handleBackupRequested = settling(handleBackupRequestedUnsettled);
const MiB = 1024 * 1024;
const STALL_SECONDS = 2;
/** Longer than the stall window plus the bounded abort of the upload: the backup must give up while the server is still frozen. */
const FROZEN_MS = 8_000;

/** The backend, freezing the S3 server once `atBytes` of the first data save have passed (then resuming it after FROZEN_MS). */
function freezingMidUpload(inner: StorageBackend, s3: LocalS3Endpoint, atBytes: number, frozen: { at: number; resumed: Promise<void> | undefined }): StorageBackend {
  return {
    ...inner,
    save(key, body, options) {
      if (body instanceof Uint8Array || frozen.at > 0) return inner.save(key, body, options);
      let seen = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          seen += chunk.length;
          if (frozen.at === 0 && seen >= atBytes) {
            s3.freeze();
            frozen.at = Date.now();
            frozen.resumed = new Promise((resolve) => setTimeout(() => resolve(s3.resume()), FROZEN_MS));
          }
          done(null, chunk);
        },
      });
      // As the agents' pipelines are: a failure of the save travels back to the dump.
      pipeline(body as Readable, counter, () => undefined);
      return inner.save(key, counter, options);
    },
  };
}

describe('a logical backup while S3 is frozen, then resumed', () => {
  let server: PostgresServer;
  let s3: LocalS3Endpoint;
  let opened: GuardedStore;
  const env = { ...process.env, TM_TEST_PGPASSWORD: '', TIDEMARK_S3_ACCESS_KEY: '', TIDEMARK_S3_SECRET_KEY: '' };

  beforeAll(async () => {
    [server, s3] = await Promise.all([startPostgres(), startLocalS3()]);
    env.TM_TEST_PGPASSWORD = server.password;
    env.TIDEMARK_S3_ACCESS_KEY = s3.accessKey;
    env.TIDEMARK_S3_SECRET_KEY = s3.secretKey;
    await server.createDatabase('big');
    // About 40 MiB of random hex: a dump of a few 8 MiB parts even after gzip.
    await server.query(
      'CREATE TABLE filler AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) AS body FROM generate_series(1, 300000) g',
      [],
      'big',
    );
  }, 120_000);

  afterAll(async () => {
    await opened?.close();
    await Promise.all([server?.stop(), s3?.stop()]);
  });

  it('is retried (nak, retryable STORAGE_UNAVAILABLE), and the redelivery commits exactly one artifact', async () => {
    const yaml = pgConfigYaml(server, 'big', 'TM_TEST_PGPASSWORD').replace(
      'storage: { type: fs, root: /tmp/unused }',
      `storage: { type: s3, endpoint: ${s3.endpoint}, bucket: frozen-backup, region: ${s3.region}, requestTimeoutSeconds: ${STALL_SECONDS}, stallSeconds: ${STALL_SECONDS} }`,
    );
    const config = parseConfig(yaml);
    opened = await openArtifactStore(storageConfig(config, env), createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }));
    const frozen: { at: number; resumed: Promise<void> | undefined } = { at: 0, resumed: undefined };
    const store = new ArtifactStore(freezingMidUpload(opened.store.backend, s3, 12 * MiB, frozen));
    const publisher = recordingPublisher();
    const deps: BackupDeps = {
      config,
      store,
      clusterFor: (target: Target) => pgCluster(target.postgres!, 'source', env),
      publisher,
      keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
      agent: { id: 'it-agent', version: '0.0.0' },
      clock: () => new Date(),
    };
    const command = RequestBackup.parse({ requestId: 'frozen-1' });

    const first = await handleBackupRequested(command, deps, testContext({ attempt: 1, streamSequence: 7 }));
    const failedAfterMs = Date.now() - frozen.at;
    expect(frozen.at).toBeGreaterThan(0);
    expect(first.type).toBe('nak');
    const failed = publisher.published.find((p) => p.subject === 'backup.failed.pg.main');
    expect(failed?.event).toMatchObject({ final: false, error: { code: 'STORAGE_UNAVAILABLE', retryable: true } });
    expect((failed?.event['error'] as { message: string }).message).toContain(`no progress for ${STALL_SECONDS} s`);
    // Given up while the server was still frozen: nothing waits on a hung S3.
    expect(failedAfterMs).toBeLessThan(FROZEN_MS);
    // No snapshot session left open on the source.
    expect((await server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'big' AND state LIKE 'idle in transaction%'"))[0].n).toBe(0);

    await frozen.resumed;
    const second = await handleBackupRequested(command, deps, testContext({ attempt: 2, streamSequence: 7 }));
    expect(second).toEqual({ type: 'ack' });
    const manifests = await store.listManifests({ engine: 'pg', target: 'main' });
    expect(manifests).toHaveLength(1);
    const keys: string[] = [];
    for await (const object of store.backend.list('')) keys.push(object.key);
    // The committed artifact's manifest and data; the cut-off upload left no visible object.
    expect(keys.sort()).toEqual([manifests[0]!.data.key, `${manifests[0]!.data.key.slice(0, manifests[0]!.data.key.lastIndexOf('/'))}/manifest.json`].sort());
    expect(manifests[0]!.data.storedBytes).toBeGreaterThan(12 * MiB);
  }, 120_000);
});
