import { describe, expect, it } from 'vitest';
import type { PgBaseSourceFacts } from '@tidemark/contracts';
import { baseFactsOf } from '../src/base-facts.js';
import { BASE_BACKUP_FORMAT } from '../src/base-backup.js';

const facts: PgBaseSourceFacts = {
  label: 'x', startLsn: '0/1000028', checkpointLsn: '0/1000060', stopLsn: '0/3000100', startTimeline: 1, stopTimeline: 1,
  startedAt: '2026-01-01T00:00:00Z', stoppedAt: '2026-01-01T00:01:00Z', serverVersion: '15.20', serverVersionNum: 150020,
  systemIdentifier: '7300000000000000001', walSegmentSize: 16 * 1024 * 1024, pgvectorVersion: null, backupManifest: { bytes: 100 },
};

describe('baseFactsOf', () => {
  it('returns the facts of a base backup manifest', () => {
    expect(baseFactsOf({ id: 'a1', format: BASE_BACKUP_FORMAT, source: facts })).toEqual(facts);
  });

  it('refuses another format as INTEGRITY_FORMAT, not retryable', () => {
    expect(() => baseFactsOf({ id: 'a1', format: 'pg_dump-custom', source: facts })).toThrow(
      expect.objectContaining({ code: 'INTEGRITY_FORMAT', retryable: false, message: expect.stringContaining('pg_dump-custom') as string }),
    );
  });

  it('refuses facts that do not parse, naming the field', () => {
    expect(() => baseFactsOf({ id: 'a1', format: BASE_BACKUP_FORMAT, source: { ...facts, stopLsn: 7 } })).toThrow(
      expect.objectContaining({ code: 'INTEGRITY_FORMAT', retryable: false, message: expect.stringMatching(/a1.*stopLsn/) as string }),
    );
  });
});
