// WAL retention, as a pure planner: which archived WAL files of a target no retained base backup
// needs. Runs after the base backups of the same pass are pruned, on what is left.
//
// Per cluster (system identifier):
// - with retained base backups: keep every segment from the start segment of the oldest retained
//   one on (on every timeline: a later base backup on a forked timeline starts at its own
//   position), remove everything before it. History files stay: they are tiny and recovery
//   needs the whole ancestry of a timeline.
// - without a retained base backup, replaced: a base backup of another cluster was taken after
//   this cluster's newest WAL (the server was re-initialised and backed up since). Nothing can
//   replay this WAL any more: all of it goes, history files included.
// - without a retained base backup otherwise (archiving started before the first base backup, or
//   a re-initialised server not backed up yet): this WAL may be needed by the base backup about
//   to be taken, so only WAL older than the policy's maxAgeDays goes, oldest first (maxAgeDays 0
//   keeps it all).
// Superseded `.partial` uploads (their closed segment is committed) go once older than a grace;
// the archiver normally removes them itself and only a crash in between leaves one behind.
import { parseWalFileName, segmentNameAt, segmentNumber, segmentNumberForLsn } from '@tidemark/pg';
import type { WalListing } from '../wal/archive-index.js';
import type { BaseBackupStart } from '../wal/check.js';

export interface WalRetentionInput {
  readonly listing: readonly WalListing[];
  /** The target's base backups that survive this pass. */
  readonly retainedBaseBackups: readonly BaseBackupStart[];
  /** The target's policy; 0 = no age limit. */
  readonly maxAgeDays: number;
  readonly now: Date;
  /** Age after which a superseded `.partial` is removed. */
  readonly partialGraceMs: number;
}

export type ClusterRule = 'base_backups' | 'replaced' | 'age' | 'keep_all';

export interface WalRemoval {
  readonly systemIdentifier: string;
  readonly file: string;
  readonly reason: string;
}

export interface ClusterRetention {
  readonly systemIdentifier: string;
  readonly rule: ClusterRule;
  /** The first segment kept, when a prefix is removed. */
  readonly keptFrom?: string;
  /** The base backup that needs `keptFrom`. */
  readonly neededBy?: string;
  readonly files: number;
  readonly removals: number;
}

export interface WalRetentionPlan {
  /** In removal order: cluster by cluster, oldest WAL first, so an interrupted pass never leaves a hole in what is kept. */
  readonly removals: readonly WalRemoval[];
  readonly clusters: readonly ClusterRetention[];
}

const DAY_MS = 24 * 3600_000;

interface Parsed {
  readonly listed: WalListing;
  /** Segment position; undefined for history files. */
  readonly position: number | undefined;
  readonly timeline: number;
  readonly partial: boolean;
}

export function planWalRetention(input: WalRetentionInput): WalRetentionPlan {
  const byCluster = new Map<string, Parsed[]>();
  for (const listed of input.listing) {
    const name = parseWalFileName(listed.file);
    if (!name) continue;
    const parsed: Parsed = name.kind === 'history'
      ? { listed, position: undefined, timeline: name.timeline, partial: false }
      : { listed, position: segmentNumber(name), timeline: name.timeline, partial: name.partial };
    const list = byCluster.get(listed.systemIdentifier) ?? [];
    list.push(parsed);
    byCluster.set(listed.systemIdentifier, list);
  }

  const removals: WalRemoval[] = [];
  const clusters: ClusterRetention[] = [];
  for (const [systemIdentifier, files] of [...byCluster].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const planned = planCluster(systemIdentifier, files, input);
    const removed = new Set(planned.removals.map((r) => r.file));
    removals.push(...orderOldestFirst(planned.removals, files));
    removals.push(...orderOldestFirst(supersededPartials(files, removed, input), files));
    clusters.push({ ...planned.summary, files: files.length, removals: removals.filter((r) => r.systemIdentifier === systemIdentifier).length });
  }
  return { removals, clusters };
}

function planCluster(
  systemIdentifier: string,
  files: readonly Parsed[],
  input: WalRetentionInput,
): { removals: WalRemoval[]; summary: Omit<ClusterRetention, 'files' | 'removals'> } {
  const bases = input.retainedBaseBackups.filter((b) => b.systemIdentifier === systemIdentifier);
  if (bases.length > 0) {
    const oldest = bases
      .map((b) => ({ base: b, position: segmentNumberForLsn(b.startLsn) }))
      .sort((a, b) => a.position - b.position)[0] as { base: BaseBackupStart; position: number };
    const keptFrom = segmentNameAt(oldest.base.startTimeline, oldest.position);
    const reason = `before ${keptFrom}, the start of the oldest retained base backup ${oldest.base.artifactId}`;
    return {
      removals: files.filter((f) => f.position !== undefined && f.position < oldest.position).map((f) => removal(f, reason)),
      summary: { systemIdentifier, rule: 'base_backups', keptFrom, neededBy: oldest.base.artifactId },
    };
  }

  const newestWal = Math.max(...files.map((f) => f.listed.modifiedAt.getTime()));
  const replacedBy = input.retainedBaseBackups
    .filter((b) => b.systemIdentifier !== systemIdentifier && Date.parse(b.createdAt) > newestWal)
    .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt))[0];
  if (replacedBy) {
    const reason = `cluster ${systemIdentifier} has no retained base backup and was replaced: base backup ${replacedBy.artifactId} of cluster ${replacedBy.systemIdentifier} was taken after its newest WAL`;
    return { removals: files.map((f) => removal(f, reason)), summary: { systemIdentifier, rule: 'replaced' } };
  }

  if (input.maxAgeDays <= 0) return { removals: [], summary: { systemIdentifier, rule: 'keep_all' } };
  const cutoff = input.now.getTime() - input.maxAgeDays * DAY_MS;
  // Remove a prefix, never a hole: everything up to the newest position archived before the cutoff.
  const lastOld = Math.max(...files.filter((f) => f.position !== undefined && f.listed.modifiedAt.getTime() < cutoff).map((f) => f.position as number));
  if (!Number.isFinite(lastOld)) return { removals: [], summary: { systemIdentifier, rule: 'age' } };
  const reason = `older than maxAgeDays ${input.maxAgeDays} and no base backup of cluster ${systemIdentifier} needs it`;
  const kept = files.filter((f) => f.position !== undefined && f.position > lastOld).sort((a, b) => (a.position as number) - (b.position as number))[0];
  return {
    removals: files.filter((f) => f.position !== undefined && f.position <= lastOld).map((f) => removal(f, reason)),
    summary: { systemIdentifier, rule: 'age', ...(kept ? { keptFrom: kept.listed.file } : {}) },
  };
}

function supersededPartials(files: readonly Parsed[], alreadyRemoved: ReadonlySet<string>, input: WalRetentionInput): WalRemoval[] {
  const closed = new Set(files.filter((f) => f.position !== undefined && !f.partial).map((f) => f.listed.file));
  return files
    .filter((f) => f.partial && !alreadyRemoved.has(f.listed.file))
    .filter((f) => closed.has(f.listed.file.replace(/\.partial$/, '')))
    .filter((f) => input.now.getTime() - f.listed.modifiedAt.getTime() > input.partialGraceMs)
    .map((f) => removal(f, 'a .partial upload superseded by its closed segment'));
}

function removal(f: Parsed, reason: string): WalRemoval {
  return { systemIdentifier: f.listed.systemIdentifier, file: f.listed.file, reason };
}

/** Segments by position (then timeline), history files last. */
function orderOldestFirst(removals: readonly WalRemoval[], files: readonly Parsed[]): WalRemoval[] {
  const byName = new Map(files.map((f) => [f.listed.file, f]));
  const rank = (r: WalRemoval): [number, number] => {
    const f = byName.get(r.file);
    return [f?.position ?? Number.MAX_SAFE_INTEGER, f?.timeline ?? 0];
  };
  return [...removals].sort((a, b) => {
    const [pa, ta] = rank(a);
    const [pb, tb] = rank(b);
    return pa - pb || ta - tb;
  });
}
