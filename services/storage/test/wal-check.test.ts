// The WAL archive check planner: gaps, partials, timeline switches followed or not, missing
// history files and a changed system identifier. Pure: listings in, findings out.
import { describe, expect, it } from 'vitest';
import { historyFileName, segmentNameAt } from '@tidemark/pg';
import { planArchiveCheck, type ArchiveCheckInput } from '../src/wal/check.js';
import { timelineChain, indexArchive } from '../src/wal/archive-index.js';
import { OTHER_SYSID, SYSID, baseStart, listing, segs } from './wal-fixtures.js';

const now = new Date('2025-06-01T12:00:00.000Z');
const check = (input: Partial<ArchiveCheckInput> & Pick<ArchiveCheckInput, 'listing'>) =>
  planArchiveCheck({ target: 'main', baseBackups: [], now, ...input });
const B = baseStart('b1', '0/2000028');

describe('planArchiveCheck: gaps', () => {
  it('is quiet on a whole archive, from the base backup start to the newest partial', () => {
    const plan = check({ listing: listing(now, [...segs(1, 0, 5), `${segmentNameAt(1, 6)}.partial`]), baseBackups: [B] });
    expect(plan.findings).toEqual([]);
    expect(plan.systemIdentifier).toBe(SYSID);
    expect(plan.checked).toMatchObject({ from: segmentNameAt(1, 2), to: segmentNameAt(1, 6), fromBaseBackup: 'b1', chain: 'names' });
  });

  it('reports a missing segment with its name and the count, keyed by the first missing', () => {
    const files = segs(1, 2, 9).filter((f) => f !== segmentNameAt(1, 4) && f !== segmentNameAt(1, 7));
    const [gap, ...rest] = check({ listing: listing(now, files), baseBackups: [B] }).findings;
    expect(rest).toEqual([]);
    expect(gap).toMatchObject({
      problem: 'gap', systemIdentifier: SYSID, key: segmentNameAt(1, 4), missingCount: 2,
      missing: [segmentNameAt(1, 4), segmentNameAt(1, 7)], details: { baseBackup: 'b1', lastMissing: segmentNameAt(1, 7) },
    });
    expect(gap?.summary).toContain('2 WAL segments missing');
    expect(gap?.summary).toContain(`the first ${segmentNameAt(1, 4)}`);
  });

  it('demands WAL from the oldest base backup start even before the first archived segment', () => {
    const gap = check({ listing: listing(now, segs(1, 4, 6)), baseBackups: [B, baseStart('b2', '0/5000000', { createdAt: '2025-01-02T00:00:00.000Z' })] }).findings[0];
    expect(gap).toMatchObject({ problem: 'gap', missing: [segmentNameAt(1, 2), segmentNameAt(1, 3)], missingCount: 2 });
  });

  it('without a base backup checks from the oldest archived segment', () => {
    expect(check({ listing: listing(now, segs(1, 7, 9)) }).findings).toEqual([]);
    expect(check({ listing: listing(now, [...segs(1, 7, 8), segmentNameAt(1, 10)]) }).findings[0]).toMatchObject({ key: segmentNameAt(1, 9), missingCount: 1 });
  });

  it('counts a .partial only at the newest position', () => {
    const middle = [...segs(1, 2, 3), `${segmentNameAt(1, 4)}.partial`, ...segs(1, 5, 6)];
    expect(check({ listing: listing(now, middle), baseBackups: [B] }).findings[0]).toMatchObject({ problem: 'gap', missing: [segmentNameAt(1, 4)] });
    // A stale partial beside its closed segment is harmless.
    const stale = [...segs(1, 2, 6), `${segmentNameAt(1, 4)}.partial`];
    expect(check({ listing: listing(now, stale), baseBackups: [B] }).findings).toEqual([]);
    // The open segment as a partial ends the archive.
    const open = [...segs(1, 2, 6), `${segmentNameAt(1, 7)}.partial`];
    expect(check({ listing: listing(now, open), baseBackups: [B] }).findings).toEqual([]);
  });

  it('waits for WAL after a hole to settle before calling it a gap (an upload may be on its way)', () => {
    const files = [...listing(now, segs(1, 2, 3), { minutesAgo: 10 }), ...listing(now, segs(1, 5, 6), { minutesAgo: 0.1 })];
    expect(check({ listing: files, baseBackups: [B] }).findings).toEqual([]);
    expect(check({ listing: files, baseBackups: [B], settleMs: 0 }).findings[0]).toMatchObject({ missing: [segmentNameAt(1, 4)] });
  });

  it('counts a huge hole without walking it, and lists at most 100 names', () => {
    const gap = check({ listing: listing(now, [segmentNameAt(1, 0), segmentNameAt(1, 100_000)]), baseBackups: [baseStart('b0', '0/28')] }).findings[0];
    expect(gap?.missingCount).toBe(99_999);
    expect(gap?.missing).toHaveLength(100);
    expect(gap?.missing?.[0]).toBe(segmentNameAt(1, 1));
  });

  it('has nothing to say about a target with no WAL', () => {
    expect(check({ listing: [] })).toEqual({ systemIdentifier: undefined, findings: [] });
    expect(check({ listing: [], baseBackups: [B] }).findings).toEqual([]);
  });
});

describe('planArchiveCheck: timelines', () => {
  it('follows a switch: the old timeline up to the fork, the new one from it, no gap across', () => {
    // Promotion in segment 5: timeline 1's segment 5 only as a partial, timeline 2 from 5 on.
    const files = [...segs(1, 2, 4), `${segmentNameAt(1, 5)}.partial`, historyFileName(2), ...segs(2, 5, 8)];
    const plan = check({ listing: listing(now, files), baseBackups: [B] });
    expect(plan.findings).toEqual([]);
    expect(plan.checked?.timelines).toEqual([1, 2]);
  });

  it('ignores the old timeline beyond a fork (a point-in-time restore forked from the past)', () => {
    const files = [...segs(1, 2, 12), historyFileName(2), ...segs(2, 5, 8)];
    expect(check({ listing: listing(now, files), baseBackups: [B] }).findings).toEqual([]);
  });

  it('with the history file read, the fork point is exact: missing first segments of the new timeline are a gap', () => {
    // Timeline 2 forked at 0/5000100 but its segments 5 and 6 never reached the archive.
    const files = [...segs(1, 2, 12), historyFileName(2), ...segs(2, 7, 8)];
    expect(check({ listing: listing(now, files), baseBackups: [B] }).findings).toEqual([]); // inferred: fork at 7
    const exact = check({ listing: listing(now, files), baseBackups: [B], newestHistory: [{ timeline: 1, switchLsn: '0/5000100', reason: 'x' }] });
    expect(exact.findings[0]).toMatchObject({ problem: 'gap', missing: [segmentNameAt(2, 5), segmentNameAt(2, 6)], missingCount: 2 });
    expect(exact.checked?.chain).toBe('history');
  });

  it('follows a chain of switches from the history file and skips an abandoned branch', () => {
    const cluster = indexArchive(listing(now, [...segs(1, 0, 9), historyFileName(2), ...segs(2, 4, 6), historyFileName(3), ...segs(3, 3, 5)])).get(SYSID);
    if (!cluster) throw new Error('cluster not indexed');
    expect(timelineChain(cluster, [{ timeline: 1, switchLsn: '0/3000000', reason: '' }])?.links).toEqual([
      { timeline: 1, from: 0, to: 2 },
      { timeline: 3, from: 3, to: Infinity },
    ]);
    // Inferred from names: timeline 2 starts after timeline 3 does, so it cannot be its ancestor.
    expect(timelineChain(cluster)?.links).toEqual([
      { timeline: 1, from: 0, to: 2 },
      { timeline: 3, from: 3, to: Infinity },
    ]);
  });

  it('reports a timeline with WAL but no history file', () => {
    const files = [...segs(1, 2, 4), ...segs(2, 5, 6)];
    const [finding, ...rest] = check({ listing: listing(now, files), baseBackups: [B] }).findings;
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ problem: 'timeline', key: 'history-2', missing: ['00000002.history'], details: { timeline: 2, reason: 'history_missing' } });
  });

  it('reports a switch not followed: WAL keeps arriving on the old timeline after the new one\'s history file', () => {
    const files = [
      ...listing(now, segs(1, 2, 6), { minutesAgo: 40 }),
      ...listing(now, [historyFileName(2)], { minutesAgo: 30 }),
      ...listing(now, segs(1, 7, 8), { minutesAgo: 5 }),
    ];
    const [finding, ...rest] = check({ listing: files, baseBackups: [B] }).findings;
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ problem: 'timeline', key: 'unfollowed-2', details: { timeline: 2, reason: 'not_followed', stillOnTimeline: 1, filesSince: 2 } });
    // Inside the grace, and once the new timeline arrives, it is quiet.
    expect(check({ listing: files, baseBackups: [B], followGraceMs: 3600_000 }).findings).toEqual([]);
    expect(check({ listing: [...files, ...listing(now, segs(2, 8, 9), { minutesAgo: 2 })], baseBackups: [B] }).findings.filter((f) => f.problem === 'timeline')).toEqual([]);
  });
});

describe('planArchiveCheck: system identifier', () => {
  it('checks the cluster of the newest base backup; a new cluster\'s segment names never mix with the old one\'s', () => {
    const oldCluster = listing(now, segs(1, 2, 40), { sysid: SYSID, minutesAgo: 120 });
    // Re-initialised: names start over, and the new cluster has a hole of its own.
    const newCluster = listing(now, [...segs(1, 1, 3), ...segs(1, 5, 6)], { sysid: OTHER_SYSID, minutesAgo: 10 });
    const all = [...oldCluster, ...newCluster];
    const onOld = check({ listing: all, baseBackups: [B] });
    expect(onOld).toMatchObject({ systemIdentifier: SYSID, findings: [] });
    // Before the new cluster's first base backup, the cluster archived now is checked.
    expect(check({ listing: all }).findings[0]).toMatchObject({ systemIdentifier: OTHER_SYSID, key: segmentNameAt(1, 4) });
    const newBase = baseStart('b-new', '0/1000028', { sysid: OTHER_SYSID, createdAt: '2025-02-01T00:00:00.000Z' });
    expect(check({ listing: all, baseBackups: [B, newBase] }).findings[0]).toMatchObject({ systemIdentifier: OTHER_SYSID, missing: [segmentNameAt(1, 4)] });
  });
});
