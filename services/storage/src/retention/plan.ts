// The retention planner: pure, so every rule is unit-tested without storage or NATS.
import type { CatalogEntry } from '../catalog/entry.js';
import { newestFirst, targetKey } from '../catalog/entry.js';

export interface RetentionPolicy {
  /** Keep at most this many artifacts per target (0 = no count limit). */
  readonly keepLast: number;
  /** Remove artifacts older than this many days (0 = no age limit). */
  readonly maxAgeDays: number;
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
 * Chooses the artifacts to prune, per target and family (see `retentionFamily`): those beyond
 * `keepLast` (newest first) and those older than `maxAgeDays`. Never the newest artifact of a
 * family whose verification passed (the last known good restore point), and never a young
 * unverified one. Targets without a policy (no longer configured) are left alone: removing data
 * needs an operator's explicit setting.
 */
export function planRetention<E extends CatalogEntry>(
  entries: readonly E[],
  retentionByTarget: ReadonlyMap<string, RetentionPolicy>,
  now: Date,
  options: PlanOptions = {},
): PruneDecision<E>[] {
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

  const decisions: PruneDecision<E>[] = [];
  for (const { target, family, list } of groups.values()) {
    const policy = retentionByTarget.get(target);
    if (!policy) continue;
    list.sort(newestFirst);
    const newestPassed = list.find((e) => e.verification === 'passed');
    list.forEach((entry, index) => {
      const reason = pruneReason(entry, index, family, policy, now);
      if (reason === undefined) return;
      if (entry === newestPassed) return;
      const ageMs = now.getTime() - Date.parse(entry.createdAt);
      if (entry.verification === 'unverified' && ageMs < graceMs) return;
      decisions.push({ entry, reason });
    });
  }
  return decisions;
}

function pruneReason(entry: CatalogEntry, index: number, family: string, policy: RetentionPolicy, now: Date): string | undefined {
  if (policy.keepLast > 0 && index >= policy.keepLast) {
    return `beyond keepLast ${policy.keepLast} (number ${index + 1} newest of its target's ${FAMILY_NOUN[family] ?? family})`;
  }
  const ageDays = (now.getTime() - Date.parse(entry.createdAt)) / DAY_MS;
  if (policy.maxAgeDays > 0 && ageDays > policy.maxAgeDays) {
    return `older than maxAgeDays ${policy.maxAgeDays} (${ageDays.toFixed(1)} days old)`;
  }
  return undefined;
}
