// Small in-memory ports for the handler tests: testkit's fake cluster and recording publisher, and
// a context for backup.requested.pg.main.
import { testContextFor } from '@tidemark/testkit';

export { fakeCluster, SAMPLE_PG_FACTS as SAMPLE_FACTS, recordingPublisher, type FakeCluster } from '@tidemark/testkit';
export const testContext = testContextFor('backup.requested.pg.main');

export const TEST_KEY_HEX = '11'.repeat(32);

export const TEST_CONFIG = `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true }
targets:
  - name: main
    engine: pg
    postgres: { host: 127.0.0.1, port: 5432, user: postgres, database: app }
  - name: plain
    engine: pg
    encrypt: false
    compression: gzip
    postgres: { host: 127.0.0.1, port: 5432, user: postgres, database: plain }
`;
