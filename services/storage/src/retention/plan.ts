// The retention planner: pure, so every rule is unit-tested without storage or NATS.
import type { CatalogEntry } from '../catalog/entry.js';
import { newestFirst, targetKey } from '../catalog/entry.js';

export interface RetentionPolicy {
  /** Keep the newest this many artifacts per target and family (0 = no count rule). */
  readonly keepLast: number;
  /** Remove artifacts older than this many days (0 = no age limit), unless a GFS rule keeps them. */
  readonly maxAgeDays: number;
  /** GFS: the newest artifact of each of the last N UTC days / ISO weeks / months that have one (0 or absent = off). */
  readonly keepDaily?: number;
  readonly keepWeekly?: number;
  readonly keepMonthly?: number;
}

export interface PlanOptions {
  /**
   * An artifact still awaiting verification and younger than this may be under verification
   * right now; it is never pruned. Default 15 minutes.
   */
  readonly unverifiedGraceMs?: number;
}

export interface PruneDecision<E extends CatalogEntry = CatalogEntry> {
  readonly entry: E;
  readonly reason: string;
}

/** What the planner decided for one artifact, and why: every rule that keeps it, or the one that removes it. */
export interface RetentionVerdict<E extends CatalogEntry = CatalogEntry> {
  readonly entry: E;
  readonly keep: boolean;
  /** keep: every reason it is kept (e.g. "last 1 of 7", "daily 2026-12-07"); prune: the one reason it goes. */
  readonly reasons: readonly string[];
}

export const DEFAULT_UNVERIFIED_GRACE_MS = 15 * 60_000;
const DAY_MS = 24 * 3600_000;

/**
 * Artifacts that are counted together. A pg target's logical dumps and base backups are
 * separate families: `keepLast: 7` keeps seven of each, so frequent dumps never push out the
 * base backups that point-in-time recovery starts from (nor the other way round). Other engines
 * have one family per target (a Qdrant target's snapshots and exports count together, as before).
 */
export function retentionFamily(entry: Pick<CatalogEntry, 'engine' | 'kind'>): string {
  if (entry.engine === 'pg') return entry.kind === 'base' ? 'base' : 'logical';
  return 'all';
}

const FAMILY_NOUN: Readonly<Record<string, string>> = { base: 'base backups', logical: 'logical backups', all: 'artifacts' };

/**
 * The artifacts to prune: the verdicts of `explainRetention` that remove, with their reason.
 * Targets without a policy (no longer configured) are left alone.
 */
export function planRetention<E extends CatalogEntry>(
  entries: readonly E[],
  retentionByTarget: ReadonlyMap<string, RetentionPolicy>,
  now: Date,
  options: PlanOptions = {},
): PruneDecision<E>[] {
  return explainRetention(entries, retentionByTarget, now, options).flatMap((v) => (v.keep ? [] : [{ entry: v.entry, reason: v.reasons[0] ?? 'no rule keeps it' }]));
}

/**
 * A verdict for every artifact of a target with a policy, per target and family (see
 * `retentionFamily`), newest first. The rule, restic's with an age limit:
 *
 * 1. Count rules keep: keepLast keeps the N newest; keepDaily/keepWeekly/keepMonthly keep the
 *    newest artifact of each of the last N UTC days / ISO weeks / calendar months that have one
 *    (a day without an artifact does not use up a slot). With no count rule at all (every one 0),
 *    nothing is removed by count.
 * 2. Age: maxAgeDays (when not 0) removes what is older, even within keepLast, unless a GFS rule
 *    (daily, weekly, monthly) keeps it: GFS is how old artifacts are meant to stay.
 * 3. Safety, whatever the rules say: the newest artifact of the family whose verification passed
 *    (the last known good restore point) and an unverified one younger than the grace (it may be
 *    under verification now) are never removed.
 *
 * So an artifact is kept when (a count rule keeps it, or none is set) and (it is young enough, or
 * a GFS rule keeps it), or a safety rule protects it.
 */
export function explainRetention<E extends CatalogEntry>(
  entries: readonly E[],
  retentionByTarget: ReadonlyMap<string, RetentionPolicy>,
  now: Date,
  options: PlanOptions = {},
): RetentionVerdict<E>[] {
  const graceMs = options.unverifiedGraceMs ?? DEFAULT_UNVERIFIED_GRACE_MS;
  const groups = new Map<string, { target: string; family: string; list: E[] }>();
  for (const entry of entries) {
    const target = targetKey(entry.engine, entry.target);
    const family = retentionFamily(entry);
    const key = `${target}#${family}`;
    const group = groups.get(key) ?? { target, family, list: [] };
    group.list.push(entry);
    groups.set(key, group);
  }

  const verdicts: RetentionVerdict<E>[] = [];
  for (const { target, family, list } of groups.values()) {
    const policy = retentionByTarget.get(target);
    if (!policy) continue;
    list.sort(newestFirst);
    const gfs = gfsReasons(list, policy);
    const countRules = policy.keepLast > 0 || gfsRules(policy).some((r) => r.count > 0);
    const newestPassed = list.find((e) => e.verification === 'passed');
    const noun = FAMILY_NOUN[family] ?? family;
    list.forEach((entry, index) => {
      const kept: string[] = [];
      const keptByLast = policy.keepLast > 0 && index < policy.keepLast;
      if (keptByLast) kept.push(`last ${policy.keepLast} (number ${index + 1} newest of its target's ${noun})`);
      const byGfs = gfs[index] ?? [];
      kept.push(...byGfs);
      const ageDays = (now.getTime() - Date.parse(entry.createdAt)) / DAY_MS;
      const tooOld = policy.maxAgeDays > 0 && ageDays > policy.maxAgeDays;

      let removal: string | undefined;
      if (countRules && !keptByLast && byGfs.length === 0) {
        removal = policy.keepLast > 0
          ? `beyond keepLast ${policy.keepLast} (number ${index + 1} newest of its target's ${noun}) and kept by no daily/weekly/monthly rule`
          : `kept by no daily/weekly/monthly rule (number ${index + 1} newest of its target's ${noun})`;
      } else if (tooOld && byGfs.length === 0) {
        removal = `older than maxAgeDays ${policy.maxAgeDays} (${ageDays.toFixed(1)} days old)`;
      }
      if (!countRules && !tooOld) kept.push(policy.maxAgeDays > 0 ? `younger than maxAgeDays ${policy.maxAgeDays}` : 'no count or age limit');
      else if (keptByLast && !tooOld && policy.maxAgeDays > 0) kept.push(`younger than maxAgeDays ${policy.maxAgeDays}`);

      if (removal !== undefined) {
        const ageMs = now.getTime() - Date.parse(entry.createdAt);
        if (entry === newestPassed) verdicts.push({ entry, keep: true, reasons: [`the newest verified of its target's ${noun} (${removal})`] });
        else if (entry.verification === 'unverified' && ageMs < graceMs) verdicts.push({ entry, keep: true, reasons: [`awaiting verification, younger than ${Math.round(graceMs / 60_000)} minutes (${removal})`] });
        else verdicts.push({ entry, keep: false, reasons: [removal] });
        return;
      }
      if (entry === newestPassed) kept.push(`the newest verified of its target's ${noun}`);
      verdicts.push({ entry, keep: true, reasons: kept });
    });
  }
  return verdicts;
}

type Bucketing = { readonly rule: 'daily' | 'weekly' | 'monthly'; readonly count: number; readonly bucket: (at: Date) => string };

function gfsRules(policy: RetentionPolicy): Bucketing[] {
  return [
    { rule: 'daily', count: policy.keepDaily ?? 0, bucket: (at) => at.toISOString().slice(0, 10) },
    { rule: 'weekly', count: policy.keepWeekly ?? 0, bucket: isoWeek },
    { rule: 'monthly', count: policy.keepMonthly ?? 0, bucket: (at) => at.toISOString().slice(0, 7) },
  ];
}

/**
 * Per entry (newest first), the GFS rules that keep it: walking newest to oldest, the first
 * artifact seen in a new bucket (the newest of its day, week or month) takes one of the rule's
 * slots while slots are left. As restic does it.
 */
function gfsReasons(newestFirstList: readonly CatalogEntry[], policy: RetentionPolicy): string[][] {
  const reasons = newestFirstList.map(() => [] as string[]);
  for (const { rule, count, bucket } of gfsRules(policy)) {
    let left = count;
    let last: string | undefined;
    newestFirstList.forEach((entry, index) => {
      if (left <= 0) return;
      const value = bucket(new Date(entry.createdAt));
      if (value === last) return;
      last = value;
      left -= 1;
      reasons[index]!.push(`${rule} ${value} (${count - left} of ${count})`);
    });
  }
  return reasons;
}

/** ISO 8601 week of a UTC time, e.g. "2026-W49" (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(at: Date): string {
  const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const weekday = day.getUTCDay() === 0 ? 7 : day.getUTCDay();
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of this week decides its year
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / DAY_MS + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
