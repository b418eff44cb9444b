// testkit's recording publisher, a context for backup.requested.qdrant.vectors and a config for the handler tests.
import { testContextFor } from '@tidemark/testkit';

export { recordingPublisher } from '@tidemark/testkit';
export const testContext = testContextFor('backup.requested.qdrant.vectors');

export const TEST_KEY_HEX = '11'.repeat(32);

export const qdrantConfigYaml = (url: string, extra = '') => `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - name: vectors
    engine: qdrant
    qdrant: { url: ${url}, incrementalField: updatedAt }
  - name: plain
    engine: qdrant
    encrypt: false
    qdrant: { url: ${url}, collections: [docs] }
${extra}`;
