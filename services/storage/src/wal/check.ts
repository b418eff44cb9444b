// The WAL archive check, as a pure planner: given a target's archive listing and its base
// backups, what endangers point-in-time recovery. The runner (check-run.ts) lists, reads and
// publishes; every rule is here and unit-tested without storage or NATS.
//
// Checked is one cluster per target: that of the newest base backup (the cluster a restore would
// use), or, before the first base backup, the cluster being archived now. Its WAL must be whole
// from the start segment of its oldest base backup (or its oldest archived WAL) to its newest
// WAL, along the path of timelines recovery follows; and every timeline switch must be followed.
import { historyFileName, segmentNameAt, segmentNumberForLsn, type TimelineSwitch } from '@tidemark/pg';
import {
  indexArchive, newestCluster, timelineChain, timelinesWithWal, type ChainLink, type ClusterArchive, type TimelineChain, type WalListing,
} from './archive-index.js';

/** What the check needs to know of a base backup (from its manifest's PgBaseSourceFacts). */
export interface BaseBackupStart {
  readonly artifactId: string;
  readonly systemIdentifier: string;
  readonly startLsn: string;
  readonly startTimeline: number;
  readonly createdAt: string;
}

export interface ArchiveCheckInput {
  readonly target: string;
  readonly listing: readonly WalListing[];
  /** The target's committed base backups. */
  readonly baseBackups: readonly BaseBackupStart[];
  /** The parsed history file of the checked cluster's newest timeline, when it could be read. */
  readonly newestHistory?: readonly TimelineSwitch[];
  readonly now: Date;
  /**
   * The pg-agent uploads closed segments in order, one at a time, and stops at a failed one, so
   * a hole does not arise in passing; but a second archiver, or a listing taken mid-commit, may
   * show one for a moment. A hole counts once WAL after it has been in the archive this long.
   * Default 15 s.
   */
  readonly settleMs?: number;
  /** How long WAL may keep arriving on the old timeline after a newer timeline's history file. Default 5 min. */
  readonly followGraceMs?: number;
}

export type ArchiveProblem = 'gap' | 'timeline';

export interface ArchiveFinding {
  readonly problem: ArchiveProblem;
  readonly systemIdentifier: string;
  /** The same problem on the next pass has the same key (first missing file, or the timeline). */
  readonly key: string;
  /** Plain facts; the alerter adds what to do. */
  readonly summary: string;
  /** gap: the first missing segments (at most MAX_LISTED_MISSING); timeline: a missing history file. */
  readonly missing?: readonly string[];
  readonly missingCount?: number;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface ArchiveCheckPlan {
  /** The cluster checked; undefined when the target has neither WAL nor base backups. */
  readonly systemIdentifier: string | undefined;
  /** The range checked, for the log. */
  readonly checked?: {
    readonly from: string;
    readonly to: string;
    readonly timelines: readonly number[];
    readonly chain: TimelineChain['source'];
    readonly fromBaseBackup?: string;
  };
  readonly findings: readonly ArchiveFinding[];
}

export const DEFAULT_SETTLE_MS = 15_000;
export const DEFAULT_FOLLOW_GRACE_MS = 5 * 60_000;
/** WalProblem.missing holds at most 100 names. */
export const MAX_LISTED_MISSING = 100;

/** The cluster a check looks at: the newest base backup's, else the one archived most recently. */
export function clusterToCheck(listing: readonly WalListing[], baseBackups: readonly BaseBackupStart[]): string | undefined {
  const newestBase = [...baseBackups].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
  if (newestBase) return newestBase.systemIdentifier;
  return newestCluster(indexArchive(listing))?.systemIdentifier;
}

/** The history file whose content makes the check exact (the checked cluster's newest timeline's), if archived. */
export function historyToRead(listing: readonly WalListing[], baseBackups: readonly BaseBackupStart[]): { systemIdentifier: string; file: string } | undefined {
  const systemIdentifier = clusterToCheck(listing, baseBackups);
  const cluster = systemIdentifier === undefined ? undefined : indexArchive(listing).get(systemIdentifier);
  if (!cluster || systemIdentifier === undefined) return undefined;
  const newest = timelinesWithWal(cluster).pop();
  if (newest === undefined || !cluster.histories.has(newest)) return undefined;
  return { systemIdentifier, file: historyFileName(newest) };
}

export function planArchiveCheck(input: ArchiveCheckInput): ArchiveCheckPlan {
  const systemIdentifier = clusterToCheck(input.listing, input.baseBackups);
  if (systemIdentifier === undefined) return { systemIdentifier, findings: [] };
  const cluster = indexArchive(input.listing).get(systemIdentifier);
  const chain = cluster ? timelineChain(cluster, input.newestHistory) : undefined;
  // No WAL of this cluster at all: nothing to be whole. A receiver that archives nothing is the
  // pg-agent's `lagging` alert, not a gap.
  if (!cluster || !chain) return { systemIdentifier, findings: [] };

  const settleMs = input.settleMs ?? DEFAULT_SETTLE_MS;
  const findings: ArchiveFinding[] = [];
  const bases = input.baseBackups.filter((b) => b.systemIdentifier === systemIdentifier);
  const oldestBase = bases
    .map((b) => ({ base: b, position: segmentNumberForLsn(b.startLsn) }))
    .sort((a, b) => a.position - b.position)[0];

  const onChain = walOnChain(cluster, chain);
  const settledBefore = input.now.getTime() - settleMs;
  const settled = onChain.filter((w) => w.modifiedAt.getTime() <= settledBefore);
  const newest = onChain[onChain.length - 1];
  const newestSettled = settled[settled.length - 1];
  const start = oldestBase?.position ?? onChain[0]?.position;

  let checked: ArchiveCheckPlan['checked'];
  if (newest && start !== undefined) {
    checked = {
      from: nameOnChain(chain, start),
      to: nameOnChain(chain, newest.position),
      timelines: chain.links.map((l) => l.timeline),
      chain: chain.source,
      ...(oldestBase ? { fromBaseBackup: oldestBase.base.artifactId } : {}),
    };
  }
  if (newestSettled && start !== undefined) {
    // Every position before the newest settled WAL must be a closed segment; the newest itself
    // is there (closed, or the partial of the open segment).
    const gap = missingBetween(cluster, chain, start, newestSettled.position - 1);
    if (gap.count > 0) {
      const first = gap.names[0] as string;
      const from = nameOnChain(chain, start);
      const to = nameOnChain(chain, newest?.position ?? newestSettled.position);
      findings.push({
        problem: 'gap',
        systemIdentifier,
        key: first,
        summary: `${gap.count} WAL segment${gap.count === 1 ? '' : 's'} missing from the archive of pg/${input.target} (cluster ${systemIdentifier}) `
          + `between ${from}${oldestBase ? ` (start of base backup ${oldestBase.base.artifactId})` : ''} and ${to}, the first ${first}: recovery cannot replay across the gap`,
        missing: gap.names,
        missingCount: gap.count,
        details: {
          from, to, firstMissing: first, lastMissing: gap.last,
          timelines: chain.links.map((l) => l.timeline), chainFrom: chain.source,
          ...(oldestBase ? { baseBackup: oldestBase.base.artifactId } : {}),
        },
      });
    }
  }

  findings.push(...historyProblems(input.target, cluster, settledBefore));
  const unfollowed = unfollowedSwitch(input.target, cluster, input.now, input.followGraceMs ?? DEFAULT_FOLLOW_GRACE_MS);
  if (unfollowed) findings.push(unfollowed);
  return { systemIdentifier, ...(checked ? { checked } : {}), findings };
}

interface ChainWal {
  readonly position: number;
  readonly modifiedAt: Date;
}

/** Closed and partial segments that lie on the chain (each timeline within its stretch), in WAL order. */
function walOnChain(cluster: ClusterArchive, chain: TimelineChain): ChainWal[] {
  const out: ChainWal[] = [];
  for (const link of chain.links) {
    for (const positions of [cluster.segments.get(link.timeline), cluster.partials.get(link.timeline)]) {
      for (const [position, modifiedAt] of positions ?? []) {
        if (position >= link.from && position <= link.to) out.push({ position, modifiedAt });
      }
    }
  }
  return out.sort((a, b) => a.position - b.position);
}

function nameOnChain(chain: TimelineChain, position: number): string {
  const link = chain.links.find((l) => position >= l.from && position <= l.to) ?? (chain.links[0] as ChainLink);
  return segmentNameAt(link.timeline, position);
}

/** Closed segments missing at positions from..to (inclusive) along the chain: the first names and the count. */
function missingBetween(cluster: ClusterArchive, chain: TimelineChain, from: number, to: number): { names: string[]; count: number; last: string | undefined } {
  const names: string[] = [];
  let count = 0;
  let last: string | undefined;
  for (const link of chain.links) {
    const lo = Math.max(from, link.from);
    const hi = Math.min(to, link.to);
    if (lo > hi) continue;
    const present = [...(cluster.segments.get(link.timeline)?.keys() ?? [])].filter((p) => p >= lo && p <= hi).sort((a, b) => a - b);
    const missingHere = hi - lo + 1 - present.length;
    if (missingHere === 0) continue;
    count += missingHere;
    // Walk the holes between present segments; a huge hole costs no more than a small one.
    let expected = lo;
    for (const position of [...present, hi + 1]) {
      if (position > expected) {
        last = segmentNameAt(link.timeline, position - 1);
        for (let p = expected; p < position && names.length < MAX_LISTED_MISSING; p += 1) names.push(segmentNameAt(link.timeline, p));
      }
      expected = position + 1;
    }
  }
  return { names, count, last };
}

/** Timelines (after the cluster's first) with WAL but no history file: recovery cannot switch to them. */
function historyProblems(target: string, cluster: ClusterArchive, settledBefore: number): ArchiveFinding[] {
  const timelines = timelinesWithWal(cluster);
  const findings: ArchiveFinding[] = [];
  for (const timeline of timelines.slice(1)) {
    if (cluster.histories.has(timeline)) continue;
    const times = [...(cluster.segments.get(timeline)?.values() ?? []), ...(cluster.partials.get(timeline)?.values() ?? [])];
    // The receiver fetches the history file as it starts on a timeline: give the upload time.
    if (!times.some((t) => t.getTime() <= settledBefore)) continue;
    const file = historyFileName(timeline);
    findings.push({
      problem: 'timeline',
      systemIdentifier: cluster.systemIdentifier,
      key: `history-${timeline}`,
      summary: `timeline ${timeline} has WAL in the archive of pg/${target} (cluster ${cluster.systemIdentifier}) but its history file ${file} is missing: recovery cannot follow the switch to timeline ${timeline}`,
      missing: [file],
      missingCount: 1,
      details: { timeline, reason: 'history_missing', historyFile: file },
    });
  }
  return findings;
}

/**
 * A newer timeline's history file is archived, yet WAL keeps arriving on an older timeline and
 * none on the new one: the archive is not following the switch (the receiver is still attached
 * to the old primary, or the new timeline's WAL is not being archived).
 */
function unfollowedSwitch(target: string, cluster: ClusterArchive, now: Date, graceMs: number): ArchiveFinding | undefined {
  const newestWithWal = timelinesWithWal(cluster).pop();
  const newestHistory = Math.max(...cluster.histories.keys());
  if (newestWithWal === undefined || !(newestHistory > newestWithWal)) return undefined;
  const historyAt = cluster.histories.get(newestHistory) as Date;
  if (now.getTime() - historyAt.getTime() <= graceMs) return undefined;
  const since = cluster.files.filter((f) => !f.file.endsWith('.history') && f.modifiedAt.getTime() > historyAt.getTime() + graceMs);
  if (since.length === 0) return undefined;
  return {
    problem: 'timeline',
    systemIdentifier: cluster.systemIdentifier,
    key: `unfollowed-${newestHistory}`,
    summary: `the history file of timeline ${newestHistory} was archived for pg/${target} (cluster ${cluster.systemIdentifier}) at ${historyAt.toISOString()}, `
      + `but WAL keeps arriving on timeline ${newestWithWal} (${since.length} file${since.length === 1 ? '' : 's'} since) and none on timeline ${newestHistory}: the timeline switch is not followed`,
    details: { timeline: newestHistory, reason: 'not_followed', stillOnTimeline: newestWithWal, historyArchivedAt: historyAt.toISOString(), filesSince: since.length },
  };
}
