// WAL file names, as PostgreSQL writes them into pg_wal and pg_receivewal into its directory:
//   TTTTTTTTLLLLLLLLSSSSSSSS          a segment (timeline, log, seg; 16 MiB segments, 256 per log)
//   TTTTTTTTLLLLLLLLSSSSSSSS.partial  the segment pg_receivewal is still writing
//   TTTTTTTT.history                  a timeline's history file
// Pure helpers: the WAL receiver uses them to spot closed segments, the archive's gap detector to
// find missing ones. Names are upper-case hex, so a plain string sort is WAL order (a timeline's
// history file sorts after the previous timeline's segments and before its own).
import { TidemarkError } from '@tidemark/contracts';

/** The segment size these helpers assume (initdb's default; the one Tidemark supports). */
export const WAL_SEGMENT_SIZE = 16 * 1024 * 1024;
/** Segments per 4 GiB "log" (the middle 8 hex digits). */
export const SEGMENTS_PER_LOG = 0x1_0000_0000 / WAL_SEGMENT_SIZE;

export interface WalSegment {
  readonly timeline: number;
  readonly log: number;
  readonly seg: number;
}

export type WalFileName =
  | ({ readonly kind: 'segment'; readonly partial: boolean } & WalSegment)
  | { readonly kind: 'history'; readonly timeline: number };

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

/** Parses a WAL file name; undefined for anything else (temp files, .backup labels, typos). */
export function parseWalFileName(name: string): WalFileName | undefined {
  const segment = SEGMENT.exec(name);
  if (segment) {
    const timeline = parseInt(segment[1] as string, 16);
    const log = parseInt(segment[2] as string, 16);
    const seg = parseInt(segment[3] as string, 16);
    if (timeline === 0 || seg >= SEGMENTS_PER_LOG) return undefined;
    return { kind: 'segment', timeline, log, seg, partial: segment[4] !== undefined };
  }
  const history = HISTORY.exec(name);
  if (history) {
    const timeline = parseInt(history[1] as string, 16);
    return timeline === 0 ? undefined : { kind: 'history', timeline };
  }
  return undefined;
}

/** A closed (complete) segment's name: 24 hex digits, no suffix. */
export function isSegmentName(name: string): boolean {
  const parsed = parseWalFileName(name);
  return parsed?.kind === 'segment' && !parsed.partial;
}

export function formatSegmentName(segment: WalSegment, options: { partial?: boolean } = {}): string {
  return `${hex8(segment.timeline)}${hex8(segment.log)}${hex8(segment.seg)}${options.partial ? '.partial' : ''}`;
}

export function historyFileName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

function requireSegment(name: string): WalSegment & { partial: boolean } {
  const parsed = parseWalFileName(name);
  if (parsed?.kind !== 'segment') throw new TypeError(`${JSON.stringify(name)} is not a wal segment name`);
  return parsed;
}

/** The segment's position on its timeline (log * 256 + seg); consecutive segments differ by 1. */
export function segmentNumber(segment: WalSegment): number {
  return segment.log * SEGMENTS_PER_LOG + segment.seg;
}

function segmentAt(timeline: number, number: number): WalSegment {
  return { timeline, log: Math.floor(number / SEGMENTS_PER_LOG), seg: number % SEGMENTS_PER_LOG };
}

/** The name of the segment after `name` on the same timeline (a `.partial` suffix is dropped). */
export function nextSegment(name: string): string {
  const segment = requireSegment(name);
  return formatSegmentName(segmentAt(segment.timeline, segmentNumber(segment) + 1));
}

/**
 * The closed segments missing between consecutive ones of the same timeline. History and partial
 * files are ignored, and nothing is reported across a timeline change (a new timeline forks from
 * the middle of the old one; see `timelinesWithoutHistory`). Input order does not matter.
 * `limit` caps the result, so a huge hole cannot produce a huge list.
 */
export function findGaps(names: Iterable<string>, limit = 1000): string[] {
  const segments: WalSegment[] = [];
  for (const name of names) {
    const parsed = parseWalFileName(name);
    if (parsed?.kind === 'segment' && !parsed.partial) segments.push(parsed);
  }
  segments.sort((a, b) => a.timeline - b.timeline || segmentNumber(a) - segmentNumber(b));
  const missing: string[] = [];
  for (let i = 1; i < segments.length; i += 1) {
    const previous = segments[i - 1] as WalSegment;
    const current = segments[i] as WalSegment;
    if (previous.timeline !== current.timeline) continue;
    for (let n = segmentNumber(previous) + 1; n < segmentNumber(current); n += 1) {
      if (missing.length >= limit) return missing;
      missing.push(formatSegmentName(segmentAt(current.timeline, n)));
    }
  }
  return missing;
}

/** Timelines after the first that have segments but no `.history` file (a timeline change not followed). */
export function timelinesWithoutHistory(names: Iterable<string>): number[] {
  const withSegments = new Set<number>();
  const withHistory = new Set<number>();
  for (const name of names) {
    const parsed = parseWalFileName(name);
    if (parsed?.kind === 'history') withHistory.add(parsed.timeline);
    else if (parsed?.kind === 'segment') withSegments.add(parsed.timeline);
  }
  const first = Math.min(...withSegments);
  return [...withSegments].filter((t) => t !== first && !withHistory.has(t)).sort((a, b) => a - b);
}

/** Parses an LSN as PostgreSQL prints it ("16/B374D848") into a byte position. */
export function parseLsn(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!match) throw new TidemarkError('INTEGRITY_FORMAT', `"${lsn}" is not a PostgreSQL LSN`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(position: bigint): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** The segment holding the byte at `lsn` (as pg_walfile_name, but without asking the server). */
export function segmentNameForLsn(timeline: number, lsn: string | bigint): string {
  const position = typeof lsn === 'string' ? parseLsn(lsn) : lsn;
  return formatSegmentName(segmentAt(timeline, Number(position / BigInt(WAL_SEGMENT_SIZE))));
}

/** The LSN of a segment's first byte. */
export function segmentStartLsn(name: string): string {
  return formatLsn(BigInt(segmentNumber(requireSegment(name))) * BigInt(WAL_SEGMENT_SIZE));
}

// ---------------------------------------------------------------- positions and timeline history

/** The position (log * 256 + seg) of the segment holding the byte at `lsn`. */
export function segmentNumberForLsn(lsn: string | bigint): number {
  const position = typeof lsn === 'string' ? parseLsn(lsn) : lsn;
  return Number(position / BigInt(WAL_SEGMENT_SIZE));
}

/** The name of the segment at `number` (as `segmentNumber` counts) on `timeline`. */
export function segmentNameAt(timeline: number, number: number): string {
  return formatSegmentName(segmentAt(timeline, number));
}

/** One line of a history file: `timeline` ran until `switchLsn`, where the next one in the file began. */
export interface TimelineSwitch {
  readonly timeline: number;
  readonly switchLsn: string;
  readonly reason: string;
}

/**
 * Parses a `.history` file as PostgreSQL writes it: one line per ancestor timeline,
 * "<timeline>\t<switch lsn>\t<reason>", oldest first, '#' comments and blank lines allowed. The
 * file of timeline N lists every timeline N descends from, so it alone gives the whole path.
 * Anything else is INTEGRITY_FORMAT.
 */
export function parseTimelineHistory(text: string): TimelineSwitch[] {
  const switches: TimelineSwitch[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})\s*(.*)$/.exec(line);
    if (!match) throw new TidemarkError('INTEGRITY_FORMAT', `line ${index + 1} of a timeline history file is not "<timeline> <lsn> <reason>": ${JSON.stringify(line.slice(0, 80))}`);
    const timeline = Number(match[1]);
    const previous = switches[switches.length - 1];
    if (timeline < 1 || (previous !== undefined && (timeline <= previous.timeline || parseLsn(match[2] as string) < parseLsn(previous.switchLsn)))) {
      throw new TidemarkError('INTEGRITY_FORMAT', `line ${index + 1} of a timeline history file goes backwards (timeline ${timeline} at ${match[2]})`);
    }
    switches.push({ timeline, switchLsn: formatLsn(parseLsn(match[2] as string)), reason: (match[3] ?? '').trim() });
  }
  return switches;
}
