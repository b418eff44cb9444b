// WAL retention planner: what the retained base backups need stays, everything older goes,
// across timelines and system identifiers; WAL without any base backup only ages out.
import { describe, expect, it } from 'vitest';
import { historyFileName, segmentNameAt } from '@tidemark/pg';
import { planWalRetention, type WalRetentionInput } from '../src/retention/wal-plan.js';
import { OTHER_SYSID, SYSID, baseStart, listing, segs } from './wal-fixtures.js';

const now = new Date('2025-06-01T12:00:00.000Z');
const plan = (input: Partial<WalRetentionInput> & Pick<WalRetentionInput, 'listing'>) =>
  planWalRetention({ retainedBaseBackups: [], maxAgeDays: 30, now, partialGraceMs: 60 * 60_000, ...input });
const removedFiles = (p: ReturnType<typeof planWalRetention>) => p.removals.map((r) => r.file);

describe('planWalRetention', () => {
  it('keeps everything from the oldest retained base backup\'s start segment on, removes the rest oldest first', () => {
    const files = [...segs(1, 0, 9), `${segmentNameAt(1, 10)}.partial`];
    const p = plan({ listing: listing(now, files), retainedBaseBackups: [baseStart('b2', '0/4000028'), baseStart('b3', '0/7000000')] });
    expect(removedFiles(p)).toEqual(segs(1, 0, 3));
    expect(p.removals[0]?.reason).toContain(`before ${segmentNameAt(1, 4)}, the start of the oldest retained base backup b2`);
    expect(p.clusters).toEqual([{ systemIdentifier: SYSID, rule: 'base_backups', keptFrom: segmentNameAt(1, 4), neededBy: 'b2', files: 11, removals: 4 }]);
  });

  it('applies the start position to every timeline and keeps all history files', () => {
    const files = [...segs(1, 0, 12), historyFileName(2), ...segs(2, 5, 8), historyFileName(3), ...segs(3, 8, 9)];
    const p = plan({ listing: listing(now, files), retainedBaseBackups: [baseStart('b-on-2', '0/6000060', { timeline: 2 })] });
    // Oldest position first, across timelines.
    expect(removedFiles(p)).toEqual([...segs(1, 0, 5), segmentNameAt(2, 5)]);
    expect(removedFiles(p)).not.toContain(historyFileName(2));
    expect(p.clusters[0]?.keptFrom).toBe(segmentNameAt(2, 6));
  });

  it('removes all WAL of a replaced cluster, and only ages out WAL that no base backup needs yet', () => {
    const old = listing(now, [...segs(1, 0, 5), historyFileName(2)], { sysid: SYSID, minutesAgo: 60 * 24 * 3 });
    const fresh = listing(now, segs(1, 0, 2), { sysid: OTHER_SYSID, minutesAgo: 10 });
    // A base backup of the new cluster taken after the old cluster's newest WAL: the old one is done.
    const newBase = baseStart('b-new', '0/1000000', { sysid: OTHER_SYSID, createdAt: new Date(now.getTime() - 60 * 60_000).toISOString() });
    const p = plan({ listing: [...old, ...fresh], retainedBaseBackups: [newBase] });
    expect(p.removals.filter((r) => r.systemIdentifier === SYSID).map((r) => r.file)).toEqual([...segs(1, 0, 5), historyFileName(2)]);
    expect(p.removals.filter((r) => r.systemIdentifier === OTHER_SYSID).map((r) => r.file)).toEqual([segmentNameAt(1, 0)]);
    expect(p.clusters.find((c) => c.systemIdentifier === SYSID)?.rule).toBe('replaced');

    // Without such a base backup the old cluster is only aged out (it may be the one still in use).
    const noBase = plan({ listing: [...old, ...fresh], maxAgeDays: 30 });
    expect(noBase.removals).toEqual([]);
    expect(noBase.clusters.map((c) => c.rule)).toEqual(['age', 'age']);
  });

  it('with no base backup at all, keeps WAL younger than maxAgeDays and removes an old prefix, never a hole', () => {
    const files = [
      ...listing(now, segs(1, 0, 3), { minutesAgo: 60 * 24 * 40 }),
      // Re-uploaded recently (an idempotent retry): still older in WAL order than an old one after it.
      ...listing(now, [segmentNameAt(1, 4)], { minutesAgo: 5 }),
      ...listing(now, [segmentNameAt(1, 5)], { minutesAgo: 60 * 24 * 31 }),
      ...listing(now, segs(1, 6, 8), { minutesAgo: 60 }),
    ];
    const p = plan({ listing: files, maxAgeDays: 30 });
    expect(removedFiles(p)).toEqual(segs(1, 0, 5));
    expect(p.clusters[0]).toMatchObject({ rule: 'age', keptFrom: segmentNameAt(1, 6) });
    expect(plan({ listing: files, maxAgeDays: 0 }).removals).toEqual([]);
  });

  it('removes a .partial superseded by its closed segment once it is older than the grace', () => {
    const files = [
      ...listing(now, [...segs(1, 2, 6), `${segmentNameAt(1, 5)}.partial`], { minutesAgo: 120 }),
      ...listing(now, [`${segmentNameAt(1, 6)}.partial`], { minutesAgo: 1 }),
      ...listing(now, [`${segmentNameAt(1, 7)}.partial`], { minutesAgo: 120 }),
    ];
    const p = plan({ listing: files, retainedBaseBackups: [baseStart('b', '0/2000000')] });
    expect(p.removals).toEqual([{ systemIdentifier: SYSID, file: `${segmentNameAt(1, 5)}.partial`, reason: 'a .partial upload superseded by its closed segment' }]);
  });
});
