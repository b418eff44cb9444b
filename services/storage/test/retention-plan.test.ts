import { describe, expect, it } from 'vitest';
import { planRetention, type RetentionPolicy } from '../src/retention/plan.js';
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
