// The missed-backup watchdog. No clock and no I/O: the caller feeds it successes and asks it at
// a time of its choosing. Time after the last success (or after start, when none is known) is cut
// into windows of the expected length; every window that ends without a success raises one
// backup_missed alert, so a target that stays broken is reported again once per window.
import type { Alert, Engine } from '@tidemark/contracts';
import { backupMissedAlert } from '../alerts/rules.js';
import type { WatchedTarget } from './expected-window.js';

const keyOf = (engine: string, target: string) => `${engine}/${target}`;

export class MissedBackupWatchdog {
  private readonly targets = new Map<string, WatchedTarget>();
  private readonly lastSuccess = new Map<string, Date>();
  /** The start of the last window already reported, per target. */
  private readonly reported = new Map<string, number>();

  constructor(targets: readonly WatchedTarget[], private readonly startedAt: Date) {
    for (const t of targets) this.targets.set(keyOf(t.engine, t.target), t);
  }

  get watched(): readonly WatchedTarget[] {
    return [...this.targets.values()];
  }

  /** Records a success; events may arrive in any order (history replay), the newest wins. */
  recordSuccess(engine: Engine, target: string, evidence: 'verified' | 'completed', at: Date): void {
    const key = keyOf(engine, target);
    const watched = this.targets.get(key);
    if (!watched || watched.evidence !== evidence || Number.isNaN(at.getTime())) return;
    const known = this.lastSuccess.get(key);
    if (!known || at.getTime() > known.getTime()) this.lastSuccess.set(key, at);
  }

  lastSuccessOf(engine: Engine, target: string): Date | undefined {
    return this.lastSuccess.get(keyOf(engine, target));
  }

  /** Forgets that the current window was reported, e.g. because raising its alert failed. */
  reportAgain(engine: Engine, target: string): void {
    this.reported.delete(keyOf(engine, target));
  }

  /** Alerts for windows that ended without a success and were not reported yet. */
  check(now: Date): Alert[] {
    const alerts: Alert[] = [];
    for (const [key, watched] of this.targets) {
      const lastSuccess = this.lastSuccess.get(key);
      const reference = (lastSuccess ?? this.startedAt).getTime();
      const elapsedWindows = Math.floor((now.getTime() - reference) / watched.expectedWithinMs);
      if (elapsedWindows < 1) continue;
      const windowStart = reference + (elapsedWindows - 1) * watched.expectedWithinMs;
      if (this.reported.get(key) === windowStart) continue;
      this.reported.set(key, windowStart);
      alerts.push(backupMissedAlert({
        engine: watched.engine,
        target: watched.target,
        windowStart: new Date(windowStart),
        windowMs: watched.expectedWithinMs,
        lastSuccess,
        evidence: watched.evidence,
        now,
      }));
    }
    return alerts;
  }
}
