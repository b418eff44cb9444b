import { describe, expect, it } from 'vitest';
import type { QdrantSourceFacts } from '@tidemark/contracts';
import { qdrantFactsOf } from '../src/facts.js';

const facts: QdrantSourceFacts = {
  qdrantVersion: '1.19.0', collection: 'docs', config: {}, vectors: [{ name: '', kind: 'dense', size: 4, distance: 'Cosine' }],
  sharding: { shardNumber: 1, replicationFactor: 1, method: 'auto' }, coverage: 'single node: all local shards', pointsCount: 3,
  sample: { size: 0, ids: [], vectorsSha256: 'a'.repeat(64) }, probes: [],
};

describe('qdrantFactsOf', () => {
  it('returns the qdrant facts of a manifest', () => {
    expect(qdrantFactsOf({ id: 'q1', source: facts })).toEqual(facts);
  });

  it('refuses a source the qdrant agent did not write as INTEGRITY_FORMAT, naming the artifact and the field', () => {
    expect(() => qdrantFactsOf({ id: 'q1', source: { ...facts, pointsCount: -1 } })).toThrow(
      expect.objectContaining({ code: 'INTEGRITY_FORMAT', retryable: false, message: expect.stringMatching(/q1.*pointsCount/) as string }),
    );
  });
});
