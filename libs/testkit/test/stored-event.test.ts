import { describe, expect, it } from 'vitest';
import { MANIFEST_VERSION, type Manifest } from '@tidemark/contracts';
import { storedEvent } from '../src/index.js';

describe('storedEvent', () => {
  it('is the artifact.stored event of a committed manifest', () => {
    const manifest: Manifest = {
      manifestVersion: MANIFEST_VERSION, id: '20260101T000000Z-0000000001', engine: 'qdrant', target: 'docs', kind: 'snapshot', format: 'qdrant-collection-snapshot',
      requestId: 'r1', createdAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:05Z', agent: { id: 'a', version: '0' }, source: {},
      pipeline: { compression: 'none', encryption: null }, data: { key: 'k', storedBytes: 12, rawBytes: 10, sha256: 'b'.repeat(64) }, verify: false,
    };
    expect(storedEvent(manifest)).toMatchObject({
      engine: 'qdrant', target: 'docs', requestId: 'r1', occurredAt: '2026-01-01T00:00:05Z', kind: 'snapshot', artifactId: manifest.id,
      manifestKey: 'artifacts/qdrant/docs/20260101T000000Z-0000000001/manifest.json', storedBytes: 12, sha256: 'b'.repeat(64), verify: false,
    });
  });
});
