import { describe, expect, it } from 'vitest';
import { parseConfig } from '@tidemark/config';
import { MissedBackupWatchdog, largestGapMs, watchedTargets, type WatchedTarget } from '../src/index.js';

const HOUR = 3600_000;
const at = (iso: string) => new Date(iso);

describe('expected window', () => {
  it('is the largest gap between consecutive fires of all schedules', () => {
    const from = at('2025-01-01T00:00:00Z');
    expect(largestGapMs([{ cron: '0 2 * * *', timezone: 'UTC' }], from)).toBe(24 * HOUR);
    // Weekdays only: the weekend makes the largest gap three days.
    expect(largestGapMs([{ cron: '0 2 * * 1-5', timezone: 'UTC' }], from)).toBe(72 * HOUR);
    // Two schedules together: 02:00 and 14:00 daily.
    expect(largestGapMs([{ cron: '0 2 * * *', timezone: 'UTC' }, { cron: '0 14 * * *', timezone: 'UTC' }], from)).toBe(12 * HOUR);
    // A very frequent schedule is sampled, not mistaken for a gap against a daily one.
    expect(largestGapMs([{ cron: '* * * * * *', timezone: 'UTC' }, { cron: '0 2 * * *', timezone: 'UTC' }], from)).toBe(1000);
  });

  it('watches targets with schedules or an explicit expectation, with the right evidence', () => {
    const config = parseConfig(`
defaults: { verify: true }
targets:
  - { name: main, engine: pg, postgres: {}, schedules: [{ id: nightly, cron: "0 2 * * *" }] }
  - { name: vectors, engine: qdrant, qdrant: { url: 'http://qdrant:6333' }, verify: false, expectedWithinMinutes: 90 }
  - { name: adhoc, engine: qdrant, qdrant: { url: 'http://qdrant:6333' } }
`, 'test.yaml', {});
    const watched = watchedTargets(config, at('2025-01-01T00:00:00Z'));
    expect(watched).toEqual([
      { engine: 'pg', target: 'main', evidence: 'verified', expectedWithinMs: 48 * HOUR },
      { engine: 'qdrant', target: 'vectors', evidence: 'completed', expectedWithinMs: 90 * 60_000 },
    ]);
  });
});

describe('MissedBackupWatchdog', () => {
  const main: WatchedTarget = { engine: 'pg', target: 'main', evidence: 'verified', expectedWithinMs: 48 * HOUR };
  const started = at('2025-01-01T00:00:00Z');

  it('stays quiet while successes arrive within the window', () => {
    const watchdog = new MissedBackupWatchdog([main], started);
    expect(watchdog.check(at('2025-01-02T23:00:00Z'))).toEqual([]);
    watchdog.recordSuccess('pg', 'main', 'verified', at('2025-01-02T23:30:00Z'));
    expect(watchdog.check(at('2025-01-04T23:00:00Z'))).toEqual([]);
  });

  it('raises once per window without a success, counting from the last success', () => {
    const watchdog = new MissedBackupWatchdog([main], started);
    watchdog.recordSuccess('pg', 'main', 'verified', at('2025-01-01T02:00:00Z'));
    expect(watchdog.check(at('2025-01-03T01:59:59Z'))).toEqual([]);
    const [first] = watchdog.check(at('2025-01-03T02:00:00Z'));
    expect(first).toMatchObject({ kind: 'backup_missed', severity: 'critical', dedupeKey: 'backup_missed:pg:main:2025-01-01T02:00:00.000Z' });
    expect(watchdog.check(at('2025-01-03T03:00:00Z'))).toEqual([]);
    expect(watchdog.check(at('2025-01-04T12:00:00Z'))).toEqual([]);
    // The next window (another 48 h) without a success raises again.
    const [second] = watchdog.check(at('2025-01-05T02:00:00Z'));
    expect(second?.dedupeKey).toBe('backup_missed:pg:main:2025-01-03T02:00:00.000Z');
  });

  it('counts from start-up when no success was ever seen', () => {
    const watchdog = new MissedBackupWatchdog([main], started);
    const [alert] = watchdog.check(at('2025-01-03T00:00:00Z'));
    expect(alert?.summary).toContain('none has been seen since 2025-01-01T00:00:00.000Z');
  });

  it('only counts the evidence the target needs, and keeps the newest success', () => {
    const watchdog = new MissedBackupWatchdog([main], started);
    watchdog.recordSuccess('pg', 'main', 'completed', at('2025-01-02T00:00:00Z'));
    expect(watchdog.lastSuccessOf('pg', 'main')).toBeUndefined();
    watchdog.recordSuccess('pg', 'main', 'verified', at('2025-01-02T00:00:00Z'));
    watchdog.recordSuccess('pg', 'main', 'verified', at('2025-01-01T12:00:00Z'));
    expect(watchdog.lastSuccessOf('pg', 'main')).toEqual(at('2025-01-02T00:00:00Z'));
    watchdog.recordSuccess('qdrant', 'unwatched', 'verified', at('2025-01-02T00:00:00Z'));
    expect(watchdog.lastSuccessOf('qdrant', 'unwatched')).toBeUndefined();
  });

  it('reports a window again after a failed raise', () => {
    const watchdog = new MissedBackupWatchdog([main], started);
    expect(watchdog.check(at('2025-01-03T00:00:00Z'))).toHaveLength(1);
    watchdog.reportAgain('pg', 'main');
    expect(watchdog.check(at('2025-01-03T00:01:00Z'))).toHaveLength(1);
  });
});
