// A pg target's WAL archive as positions: which segments, partials and history files each
// cluster (system identifier) holds, and the path of timelines that leads to its newest WAL.
// Pure: the archive check and WAL retention both plan on this.
import { parseWalFileName, segmentNumber, segmentNumberForLsn, type TimelineSwitch } from '@tidemark/pg';

/** One committed file as a listing sees it. */
export interface WalListing {
  readonly systemIdentifier: string;
  readonly file: string;
  readonly modifiedAt: Date;
}

/** A position on a timeline → when the file there was committed. */
export type Positions = ReadonlyMap<number, Date>;

export interface ClusterArchive {
  readonly systemIdentifier: string;
  /** Closed segments per timeline. */
  readonly segments: ReadonlyMap<number, Positions>;
  /** `.partial` uploads of the open segment, per timeline. */
  readonly partials: ReadonlyMap<number, Positions>;
  /** History files: timeline → committed at. */
  readonly histories: ReadonlyMap<number, Date>;
  /** Every committed file of the cluster, by name. */
  readonly files: readonly WalListing[];
  /** When the cluster's newest file was committed (tells the live cluster from a replaced one). */
  readonly newestAt: Date;
}

/** Groups a listing by cluster; names that are not WAL files are ignored. */
export function indexArchive(listing: Iterable<WalListing>): Map<string, ClusterArchive> {
  type Building = { segments: Map<number, Map<number, Date>>; partials: Map<number, Map<number, Date>>; histories: Map<number, Date>; files: WalListing[]; newestAt: Date };
  const clusters = new Map<string, Building>();
  for (const listed of listing) {
    const parsed = parseWalFileName(listed.file);
    if (!parsed) continue;
    let cluster = clusters.get(listed.systemIdentifier);
    if (!cluster) {
      cluster = { segments: new Map(), partials: new Map(), histories: new Map(), files: [], newestAt: listed.modifiedAt };
      clusters.set(listed.systemIdentifier, cluster);
    }
    cluster.files.push(listed);
    if (listed.modifiedAt > cluster.newestAt) cluster.newestAt = listed.modifiedAt;
    if (parsed.kind === 'history') {
      cluster.histories.set(parsed.timeline, listed.modifiedAt);
      continue;
    }
    const byTimeline = parsed.partial ? cluster.partials : cluster.segments;
    const positions = byTimeline.get(parsed.timeline) ?? new Map<number, Date>();
    positions.set(segmentNumber(parsed), listed.modifiedAt);
    byTimeline.set(parsed.timeline, positions);
  }
  const out = new Map<string, ClusterArchive>();
  for (const [systemIdentifier, c] of clusters) out.set(systemIdentifier, { systemIdentifier, ...c });
  return out;
}

/** The cluster whose newest file is the newest of all (the one being archived now). */
export function newestCluster(clusters: ReadonlyMap<string, ClusterArchive>): ClusterArchive | undefined {
  let newest: ClusterArchive | undefined;
  for (const cluster of clusters.values()) {
    if (!newest || cluster.newestAt > newest.newestAt) newest = cluster;
  }
  return newest;
}

/** Timelines that hold WAL (closed or partial segments), ascending. */
export function timelinesWithWal(cluster: ClusterArchive): number[] {
  return [...new Set([...cluster.segments.keys(), ...cluster.partials.keys()])].sort((a, b) => a - b);
}

/** A stretch of the path to the newest WAL: positions `from`..`to` (inclusive) are read from `timeline`. */
export interface ChainLink {
  readonly timeline: number;
  readonly from: number;
  /** Infinity on the newest timeline. */
  readonly to: number;
}

export interface TimelineChain {
  readonly links: readonly ChainLink[];
  /** `history`: from the newest timeline's history file; `names`: inferred from where each timeline's WAL begins. */
  readonly source: 'history' | 'names';
}

/**
 * The path recovery follows to the newest WAL. A timeline that forked at LSN L is read from the
 * segment holding L on (its first segment starts with a copy of the parent's WAL up to L), its
 * parent up to the segment before. With the newest timeline's history file the fork points are
 * exact; without it (unreadable, or not archived) each timeline is assumed to fork where its
 * first archived segment is, from the nearest lower timeline that reaches back further.
 */
export function timelineChain(cluster: ClusterArchive, newestHistory?: readonly TimelineSwitch[]): TimelineChain | undefined {
  const timelines = timelinesWithWal(cluster);
  const newest = timelines[timelines.length - 1];
  if (newest === undefined) return undefined;
  if (newestHistory && newestHistory.length > 0 && newestHistory.every((s) => s.timeline < newest)) {
    const links: ChainLink[] = [];
    let from = 0;
    for (const entry of newestHistory) {
      const forkAt = segmentNumberForLsn(entry.switchLsn);
      links.push({ timeline: entry.timeline, from, to: forkAt - 1 });
      from = forkAt;
    }
    links.push({ timeline: newest, from, to: Infinity });
    return { links: links.filter((l) => l.to >= l.from), source: 'history' };
  }
  const firstOf = (timeline: number): number =>
    Math.min(...(cluster.segments.get(timeline)?.keys() ?? []), ...(cluster.partials.get(timeline)?.keys() ?? []));
  const reversed: ChainLink[] = [{ timeline: newest, from: firstOf(newest), to: Infinity }];
  for (let i = timelines.length - 2; i >= 0; i -= 1) {
    const timeline = timelines[i] as number;
    const child = reversed[reversed.length - 1] as ChainLink;
    const first = firstOf(timeline);
    if (first >= child.from) continue; // forks later than its supposed child: not an ancestor
    reversed.push({ timeline, from: first, to: child.from - 1 });
  }
  const links = reversed.reverse();
  // Whatever precedes the oldest archived WAL belongs to the oldest timeline of the path.
  links[0] = { ...(links[0] as ChainLink), from: 0 };
  return { links, source: 'names' };
}

/** The link of the chain that covers `position`. */
export function linkAt(chain: TimelineChain, position: number): ChainLink | undefined {
  return chain.links.find((l) => position >= l.from && position <= l.to);
}
