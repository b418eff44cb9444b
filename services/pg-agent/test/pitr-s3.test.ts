// A point-in-time restore from an S3 endpoint (s3rver), to "latest" where the newest WAL exists
// only as an upload of the open segment (<segment>.partial, cut at the flushed position as an
// archiver uploading the written part would): the WAL server pads it to a whole segment and the
// row committed in it is restored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestRestore } from '@tidemark/contracts';
import { createS3Backend, type StorageBackend } from '@tidemark/storage';
import { loadKeyRing, type KeyRing } from '@tidemark/pipeline';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { completedEvent, labelsAt, pitrDeps, restoreContext, startPitrSource, stopRestoredServers, type PitrSource } from './pitr-fixture.js';
import { settling } from '@tidemark/testkit';
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

describe('point-in-time restore from S3, through a partial segment', () => {
  let s3: S3Endpoint;
  let backend: StorageBackend;
  let source: PitrSource;
  let keys: KeyRing;
  const restored = new Set<string>();

  beforeAll(async () => {
    keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '9d'.repeat(32) });
    s3 = await startS3();
    backend = await createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: 'pitr', prefix: 'tidemark' });
    source = await startPitrSource(backend);
    await source.server.query('CREATE TABLE moments (id serial PRIMARY KEY, label text NOT NULL)', [], 'app');
    await source.takeBaseBackup('base-s3', keys.current);
    await source.server.query(`INSERT INTO moments (label) VALUES ('closed segment')`, [], 'app');
    await source.archiveWal(keys.current);
    // Committed with a flush (the test server runs synchronous_commit = off), into the open segment.
    await source.server.query(`BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO moments (label) VALUES ('open segment'); COMMIT;`, [], 'app');
    await source.archivePartial(keys.current, { cutAtInsertPosition: true });
  });

  afterAll(async () => {
    await stopRestoredServers(restored);
    if (source) await source.stop();
    await backend?.close();
    await s3?.stop();
  });

  it('restores to latest, including the row only the partial segment holds', async () => {
    const deps = pitrDeps(source, backend, keys);
    const outcome = await handleRestoreRequested(RequestRestore.parse({ requestId: 'pitr-s3', pointInTime: { latest: true } }), deps, restoreContext());
    const event = completedEvent(deps.publisher);
    restored.add(event.dataDirectory!);
    expect(outcome).toEqual({ type: 'ack' });
    expect(await labelsAt(event.port!, source)).toEqual(['closed segment', 'open segment']);
    expect(event.checks?.every((check) => check.ok)).toBe(true);
    console.log(`RTO from S3 to latest: ${JSON.stringify(event.rto)}`);
  });
});
