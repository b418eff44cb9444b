// WAL archiving on a real PostgreSQL and pg_receivewal, through the production storage wiring
// (openArtifactStore: one breaker and retries shared with the backups), into a real S3 server that
// hangs (SIGSTOP) long enough for the breaker to open, then resumes. A WAL upload offered while the
// breaker is still open is refused before its body is read. tests/faults/s3-outage found WAL
// archiving stopped for good after that: the refused upload's encoding waited forever for a reader,
// so pg_receivewal's files were never offered again, and nothing was logged.
import { randomBytes } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { parseConfig, storageConfig, type PostgresConnection } from '@tidemark/config';
import { parseLsn } from '@tidemark/pg';
import { keyRingOf } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { openArtifactStore, WalArchive, type GuardedStore } from '@tidemark/storage';
import { eventually, makeTempDir, recordingPublisher, removeTempDir, startLocalS3, startPostgres, type LocalS3Endpoint, type PostgresServer } from '@tidemark/testkit';
import type { WalArchiver } from '../src/wal/archiver.js';
import { pgConfigYaml } from './fixture.js';
import { realServerArchiver } from './wal-fixture.js';

const PASSWORD_ENV = 'TM_WAL_S3_FROZEN_PGPASSWORD';
/** storage.requestTimeoutSeconds and storage.stallSeconds: a hung S3 is given up on after this. */
const STALL_SECONDS = 2;
const key = { id: 'wal-frozen-key', key: randomBytes(32) };

describe('wal archiving while S3 hangs and the storage breaker opens', () => {
  let server: PostgresServer;
  let s3: LocalS3Endpoint;
  let root: string;
  let opened: GuardedStore | undefined;
  let archiver: WalArchiver | undefined;
  const published = recordingPublisher();
  const logs: string[] = [];
  const logger = {
    debug: () => undefined,
    info: (details: object, message: string) => logs.push(`info ${message} ${JSON.stringify(details)}`),
    warn: (details: object, message: string) => logs.push(`warn ${message} ${JSON.stringify(details)}`),
    error: (details: object, message: string) => logs.push(`error ${message} ${JSON.stringify(details)}`),
  };
  const env = { ...process.env, TIDEMARK_S3_ACCESS_KEY: '', TIDEMARK_S3_SECRET_KEY: '' };

  const currentLsn = async () => parseLsn((await server.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn);
  const archivedUpTo = (lsn: bigint) => published.published.some((p) => p.subject === 'wal.archived.pg.main' && typeof p.event['endLsn'] === 'string' && parseLsn(p.event['endLsn']) >= lsn);

  beforeAll(async () => {
    [server, s3] = await Promise.all([startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '4', max_replication_slots: '4' } }), startLocalS3()]);
    process.env[PASSWORD_ENV] = server.password;
    env.TIDEMARK_S3_ACCESS_KEY = s3.accessKey;
    env.TIDEMARK_S3_SECRET_KEY = s3.secretKey;
    await server.query('CREATE TABLE filler (id int, body text)');
    root = await makeTempDir('tidemark-wal-s3-frozen-');
    await chmod(root, 0o711); // pg_receivewal runs as postgres and must reach the spool
  }, 120_000);

  afterAll(async () => {
    s3?.resume();
    await archiver?.stop();
    await opened?.close();
    await Promise.all([server?.stop(), s3?.stop()]);
    if (root) await removeTempDir(root);
    delete process.env[PASSWORD_ENV];
    if (process.env['TM_WAL_TEST_DEBUG']) console.log(logs.join('\n'));
  });

  it('a WAL upload refused by the open breaker fails as a retry, and archiving catches up once S3 answers again', async () => {
    const yaml = pgConfigYaml(server, 'postgres', PASSWORD_ENV).replace(
      'storage: { type: fs, root: /tmp/unused }',
      `storage: { type: s3, endpoint: ${s3.endpoint}, bucket: wal-frozen, region: ${s3.region}, requestTimeoutSeconds: ${STALL_SECONDS}, stallSeconds: ${STALL_SECONDS} }`,
    );
    opened = await openArtifactStore(storageConfig(parseConfig(yaml), env), createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }));
    const store = opened;
    const conn = { ...server.connection(), passwordEnv: PASSWORD_ENV } as PostgresConnection;
    archiver = realServerArchiver(conn, { spoolDir: join(root, 'wal', 'main'), encode: { compression: 'zstd', key }, keys: keyRingOf(key), archive: new WalArchive(store.store.backend), publisher: published, logger });
    archiver.start();
    await server.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    await server.query('SELECT pg_switch_wal()');
    const before = await currentLsn();
    await eventually(() => archivedUpTo(before), 60_000, 'wal archiving to run before the fault');

    // S3 hangs; other storage calls of the agent (a backup's, here plain stats) time out until the
    // breaker opens. Then S3 answers again, but the breaker stays open for its reset time.
    s3.freeze();
    await eventually(async () => {
      await Promise.allSettled([1, 2, 3].map((n) => store.store.backend.stat(`probe-${n}`)));
      return store.breakerState() === 'open';
    }, 90_000, 'the storage breaker to open while S3 hangs');
    s3.resume();

    // WAL written now is offered (as the growing partial segment) while the breaker is open.
    await server.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    const written = await currentLsn();
    await eventually(() => logs.some((line) => line.startsWith('warn handing over wal failed') && line.includes('failing repeatedly')), 30_000, 'a WAL upload refused by the open breaker, reported as a retry');
    await eventually(() => archivedUpTo(written), 120_000, 'WAL archiving to catch up once the breaker lets calls through');

    // And it goes on: a segment closed afterwards is archived as well.
    await server.query('SELECT pg_switch_wal()');
    const after = await currentLsn();
    await eventually(() => archivedUpTo(after), 60_000, 'a later segment to be archived');
  }, 300_000);
});
