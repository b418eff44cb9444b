import { describe, expect, it } from 'vitest';
import { explainRetention, isoWeek, planRetention, type RetentionPolicy } from '../src/retention/plan.js';
import { entry } from './fixtures.js';

const now = new Date('2025-06-01T12:00:00.000Z');
const DAY = 24 * 60;
const policies = (policy: RetentionPolicy, ...targets: string[]) => new Map(targets.map((t) => [t, policy]));
const ids = (decisions: { entry: { artifactId: string } }[]) => decisions.map((d) => d.entry.artifactId).sort();

describe('planRetention', () => {
  it('keeps the newest keepLast artifacts of a target and prunes the rest', () => {
    const entries = [1, 2, 3, 4, 5].map((n) => entry(`a${n}`, now, n * 60, 'not-required'));
    const plan = planRetention(entries, policies({ keepLast: 3, maxAgeDays: 0 }, 'pg/main'), now);
    expect(ids(plan)).toEqual(['a4', 'a5']);
    expect(plan[0]?.reason).toMatch(/keepLast 3/);
  });

  it('prunes artifacts older than maxAgeDays', () => {
    const entries = [entry('young', now, 1 * DAY, 'not-required'), entry('old', now, 10 * DAY, 'not-required')];
    const plan = planRetention(entries, policies({ keepLast: 0, maxAgeDays: 7 }, 'pg/main'), now);
    expect(ids(plan)).toEqual(['old']);
    expect(plan[0]?.reason).toMatch(/older than maxAgeDays 7/);
  });

  it('never prunes the newest artifact that passed verification', () => {
    const entries = [
      entry('failed-new', now, 60, 'failed'),
      entry('failed-newer', now, 30, 'failed'),
      entry('passed-old', now, 40 * DAY, 'passed'),
      entry('passed-older', now, 41 * DAY, 'passed'),
    ];
    const plan = planRetention(entries, policies({ keepLast: 1, maxAgeDays: 30 }, 'pg/main'), now);
    expect(ids(plan)).toEqual(['failed-new', 'passed-older']);
  });

  it('never prunes a young artifact still awaiting verification', () => {
    const entries = [entry('verified', now, 120, 'passed'), entry('pending-young', now, 2, 'unverified'), entry('pending-old', now, 90, 'unverified')];
    const plan = planRetention(entries, policies({ keepLast: 0, maxAgeDays: 0.001 }, 'pg/main'), now, { unverifiedGraceMs: 10 * 60_000 });
    expect(ids(plan)).toEqual(['pending-old']);
  });

  it('applies each target its own policy and counts per target', () => {
    const entries = [
      ...[1, 2, 3].map((n) => entry(`main${n}`, now, n, 'not-required', { target: 'main' })),
      ...[1, 2, 3].map((n) => entry(`other${n}`, now, n, 'not-required', { target: 'other' })),
      ...[1, 2, 3].map((n) => entry(`q${n}`, now, n, 'not-required', { engine: 'qdrant', target: 'main' })),
    ];
    const plan = planRetention(entries, new Map([
      ['pg/main', { keepLast: 2, maxAgeDays: 0 }],
      ['pg/other', { keepLast: 1, maxAgeDays: 0 }],
      ['qdrant/main', { keepLast: 0, maxAgeDays: 0 }],
    ]), now);
    expect(ids(plan)).toEqual(['main3', 'other2', 'other3']);
  });

  it('counts a pg target\'s base backups and logical dumps separately, and Qdrant kinds together', () => {
    const base = (id: string, age: number, status: Parameters<typeof entry>[3] = 'not-required') => ({ ...entry(id, now, age, status), kind: 'base' as const });
    const entries = [
      ...[1, 2, 3, 4].map((n) => entry(`dump${n}`, now, n * 10, 'not-required')),
      base('base1', 15, 'passed'), base('base2', 100), base('base3', 200),
      { ...entry('snap1', now, 1, 'not-required', { engine: 'qdrant' }), kind: 'snapshot' as const },
      { ...entry('export1', now, 2, 'not-required', { engine: 'qdrant' }), kind: 'export' as const },
      { ...entry('snap2', now, 3, 'not-required', { engine: 'qdrant' }), kind: 'snapshot' as const },
    ];
    const plan = planRetention(entries, new Map([['pg/main', { keepLast: 2, maxAgeDays: 0 }], ['qdrant/main', { keepLast: 2, maxAgeDays: 0 }]]), now);
    expect(ids(plan)).toEqual(['base3', 'dump3', 'dump4', 'snap2']);
    expect(plan.find((d) => d.entry.artifactId === 'base3')?.reason).toMatch(/number 3 newest of its target's base backups/);
    expect(plan.find((d) => d.entry.artifactId === 'dump3')?.reason).toMatch(/of its target's logical backups/);
  });

  it('never prunes the newest verified base backup, even when dumps were verified since', () => {
    const base = (id: string, age: number, status: Parameters<typeof entry>[3]) => ({ ...entry(id, now, age, status), kind: 'base' as const });
    const entries = [entry('dump-new', now, 1, 'passed'), base('base-failed', 10, 'failed'), base('base-ok', 50 * DAY, 'passed')];
    expect(ids(planRetention(entries, policies({ keepLast: 1, maxAgeDays: 30 }, 'pg/main'), now))).toEqual([]);
  });

  it('leaves targets without a policy alone', () => {
    const entries = [entry('a', now, 100 * DAY, 'not-required', { target: 'removed' })];
    expect(planRetention(entries, policies({ keepLast: 1, maxAgeDays: 1 }, 'pg/main'), now)).toEqual([]);
  });

  it('prunes nothing when both limits are off', () => {
    const entries = [1, 2, 3].map((n) => entry(`a${n}`, now, n * 400 * DAY, 'failed'));
    expect(planRetention(entries, policies({ keepLast: 0, maxAgeDays: 0 }, 'pg/main'), now)).toEqual([]);
  });
});

describe('planRetention with GFS (keepDaily, keepWeekly, keepMonthly)', () => {
  // One artifact every 6 hours for 120 days before `now` (2025-06-01T12:00Z), newest first.
  const series = (days: number, everyHours = 6) =>
    Array.from({ length: (days * 24) / everyHours }, (_, i) => entry(`s${String(i).padStart(4, '0')}`, now, i * everyHours * 60 + 1, 'not-required', { engine: 'files', target: 'docs' }));
  const kept = (policy: RetentionPolicy, entries = series(120)) =>
    explainRetention(entries, policies(policy, 'files/docs'), now).filter((v) => v.keep);
  const keptDays = (verdicts: ReturnType<typeof kept>) => verdicts.map((v) => v.entry.createdAt.slice(0, 10));

  it('keeps the newest artifact of each of the last N UTC days', () => {
    const verdicts = kept({ keepLast: 0, maxAgeDays: 0, keepDaily: 3 });
    expect(keptDays(verdicts)).toEqual(['2025-06-01', '2025-05-31', '2025-05-30']);
    // The newest of 2025-05-31 is its last one, a minute before midnight (every 6 h from 11:59).
    expect(verdicts[1]?.entry.createdAt).toBe('2025-05-31T23:59:00.000Z');
    expect(verdicts[1]?.reasons).toEqual(['daily 2025-05-31 (2 of 3)']);
  });

  it('counts days that have an artifact, not calendar days', () => {
    const sparse = [0, 3, 10].map((d) => entry(`d${d}`, now, d * DAY + 1, 'not-required', { engine: 'files', target: 'docs' }));
    expect(keptDays(kept({ keepLast: 0, maxAgeDays: 0, keepDaily: 2 }, sparse))).toEqual(['2025-06-01', '2025-05-29']);
  });

  it('keeps the newest of each ISO week and of each month', () => {
    expect(keptDays(kept({ keepLast: 0, maxAgeDays: 0, keepWeekly: 3 }))).toEqual(['2025-06-01', '2025-05-25', '2025-05-18']);
    expect(keptDays(kept({ keepLast: 0, maxAgeDays: 0, keepMonthly: 4 }))).toEqual(['2025-06-01', '2025-05-31', '2025-04-30', '2025-03-31']);
  });

  it('keeps an artifact that any rule keeps, and says which rules', () => {
    const verdicts = kept({ keepLast: 2, maxAgeDays: 0, keepDaily: 2, keepWeekly: 2, keepMonthly: 2 });
    const newest = verdicts[0];
    expect(newest?.reasons).toEqual([
      expect.stringMatching(/^last 2 \(number 1 newest/), 'daily 2025-06-01 (1 of 2)', 'weekly 2025-W22 (1 of 2)', 'monthly 2025-06 (1 of 2)',
    ]);
    // last 2 (06-01 11:59, 05:59), daily 05-31, weekly 05-25, monthly 05-31 (= daily's): 4 artifacts.
    expect(verdicts.map((v) => v.entry.createdAt)).toEqual([
      '2025-06-01T11:59:00.000Z', '2025-06-01T05:59:00.000Z', '2025-05-31T23:59:00.000Z', '2025-05-25T23:59:00.000Z',
    ]);
    expect(verdicts[2]?.reasons).toEqual(['daily 2025-05-31 (2 of 2)', 'monthly 2025-05 (2 of 2)']);
  });

  it('removes what is older than maxAgeDays unless a GFS rule keeps it, even within keepLast', () => {
    const entries = [0, 1, 40, 70, 100].map((d) => entry(`d${d}`, now, d * DAY + 1, 'not-required', { engine: 'files', target: 'docs' }));
    const verdicts = explainRetention(entries, policies({ keepLast: 5, maxAgeDays: 30, keepMonthly: 3 }, 'files/docs'), now);
    const byId = new Map(verdicts.map((v) => [v.entry.artifactId, v]));
    // Months with an artifact, newest first: 2025-06 (d0), 2025-05 (d1), 2025-04 (d40); d70 and d100 are beyond 3 months.
    expect([...byId].filter(([, v]) => v.keep).map(([id]) => id)).toEqual(['d0', 'd1', 'd40']);
    expect(byId.get('d40')?.reasons).toEqual([expect.stringMatching(/^last 5/), 'monthly 2025-04 (3 of 3)']);
    expect(byId.get('d70')?.reasons).toEqual(['older than maxAgeDays 30 (70.0 days old)']);
  });

  it('with GFS rules, removes what no count rule keeps, even when young', () => {
    const entries = series(2);
    const plan = planRetention(entries, policies({ keepLast: 1, maxAgeDays: 0, keepDaily: 1 }, 'files/docs'), now);
    expect(plan).toHaveLength(entries.length - 1);
    expect(plan[0]?.reason).toMatch(/beyond keepLast 1 .* kept by no daily\/weekly\/monthly rule/);
  });

  it('still never removes the newest verified artifact nor a young unverified one', () => {
    const target = { engine: 'files' as const, target: 'docs' };
    const entries = [entry('young', now, 2, 'unverified', target), entry('ok', now, 1, 'failed', target), entry('verified', now, 5 * DAY, 'passed', target)];
    const verdicts = explainRetention(entries, policies({ keepLast: 0, maxAgeDays: 0, keepDaily: 1 }, 'files/docs'), now, { unverifiedGraceMs: 10 * 60_000 });
    const byId = new Map(verdicts.map((v) => [v.entry.artifactId, v]));
    expect(byId.get('ok')?.reasons).toEqual(['daily 2025-06-01 (1 of 1)']);
    expect(byId.get('young')?.keep).toBe(true);
    expect(byId.get('young')?.reasons[0]).toMatch(/^awaiting verification/);
    expect(byId.get('verified')?.keep).toBe(true);
    expect(byId.get('verified')?.reasons[0]).toMatch(/^the newest verified of its target's artifacts \(kept by no daily/);
  });

  it('names ISO weeks as ISO 8601 does around the new year', () => {
    expect(isoWeek(new Date('2024-12-30T00:00:00Z'))).toBe('2025-W01');
    expect(isoWeek(new Date('2021-01-03T23:59:59Z'))).toBe('2020-W53');
    expect(isoWeek(new Date('2025-06-01T12:00:00Z'))).toBe('2025-W22');
    expect(isoWeek(new Date('2025-06-02T00:00:00Z'))).toBe('2025-W23');
  });
});
