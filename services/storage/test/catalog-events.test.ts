import { describe, expect, it } from 'vitest';
import { subjects } from '@tidemark/contracts';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { createLogger } from '@tidemark/runtime';
import { Catalog } from '../src/catalog/catalog.js';
import { handleArtifactEvent } from '../src/handlers/catalog-events.js';
import { commitArtifact, verification } from './fixtures.js';

const logger = createLogger('storage-test', { TIDEMARK_LOG_LEVEL: 'silent' });

describe('handleArtifactEvent', () => {
  it('re-reads the artifact from the bucket and acks, whatever the event claims', async () => {
    const store = new ArtifactStore(createMemoryBackend());
    const catalog = new Catalog(store);
    await catalog.rebuild();
    const m = await commitArtifact(store, { requestId: 'r1', createdAt: new Date() });
    const context = { logger, subject: subjects.artifactStored('pg', 'main') };
    expect(await handleArtifactEvent({ engine: 'pg', target: 'main', artifactId: m.id }, { catalog }, context)).toEqual({ type: 'ack' });
    expect(catalog.list()).toMatchObject([{ artifactId: m.id, verification: 'unverified' }]);
    await store.writeVerification(m, verification(m.id, 'failed'));
    await handleArtifactEvent({ engine: 'pg', target: 'main', artifactId: m.id }, { catalog }, { logger, subject: subjects.verifyFailed('pg', 'main') });
    expect(catalog.list()).toMatchObject([{ verification: 'failed', verificationError: { code: 'VERIFY_MISMATCH' } }]);
  });

  it('acks an event naming an uncommitted artifact without listing it', async () => {
    const catalog = new Catalog(new ArtifactStore(createMemoryBackend()));
    const outcome = await handleArtifactEvent({ engine: 'pg', target: 'main', artifactId: '20250101T000000Z-0000000000' }, { catalog }, { logger, subject: 's' });
    expect(outcome).toEqual({ type: 'ack' });
    expect(catalog.size).toBe(0);
  });
});
