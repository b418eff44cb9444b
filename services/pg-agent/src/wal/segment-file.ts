// What a WAL file in the spool says about itself: a segment's long page header (which cluster,
// which position, which segment size) and a history file's switch points. Read before a file is
// uploaded, so nothing of another cluster or position is archived under this one's name.
import { open } from 'node:fs/promises';
import { TidemarkError } from '@tidemark/contracts';
import { formatLsn, parseLsn, parseTimelineHistory, segmentStartLsn, WAL_SEGMENT_SIZE } from '@tidemark/pg';

// XLogLongPageHeaderData, the header of every segment's first page (x86-64/arm64 layout).
const XLP_LONG_HEADER = 0x0002;
const LONG_HEADER_BYTES = 40;

/** What the first page of a segment file says about where it belongs. */
export interface SegmentHeader {
  readonly systemIdentifier: string;
  readonly pageAddress: bigint;
  readonly segmentSize: number;
}

/** Reads a segment's long page header; undefined while the file holds no WAL yet (zeros). */
export async function readSegmentHeader(path: string): Promise<SegmentHeader | undefined> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(LONG_HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, LONG_HEADER_BYTES, 0);
    if (bytesRead < LONG_HEADER_BYTES || buffer.every((byte) => byte === 0)) return undefined;
    const info = buffer.readUInt16LE(2);
    if ((info & XLP_LONG_HEADER) === 0) {
      throw new TidemarkError('INTEGRITY_FORMAT', `${path} does not start with a WAL segment header; it is not a WAL segment: remove it from the spool`);
    }
    return { pageAddress: buffer.readBigUInt64LE(8), systemIdentifier: buffer.readBigUInt64LE(24).toString(), segmentSize: buffer.readUInt32LE(32) };
  } finally {
    await handle.close();
  }
}

/** Refuses a file of another cluster or segment size; 'empty' while it holds no WAL yet. */
export async function checkSegmentBelongs(path: string, name: string, cluster: { readonly target: string; readonly systemIdentifier: string }): Promise<'ok' | 'empty'> {
  const header = await readSegmentHeader(path);
  if (header === undefined) return 'empty';
  if (header.systemIdentifier !== cluster.systemIdentifier) {
    throw new TidemarkError('INTEGRITY_FORMAT', `wal file ${name} belongs to cluster ${header.systemIdentifier}, not ${cluster.systemIdentifier}; the target was re-initialised: archiving follows the new cluster shortly`);
  }
  if (header.segmentSize !== WAL_SEGMENT_SIZE) {
    throw new TidemarkError('CONFIG_INVALID', `target ${cluster.target} uses ${header.segmentSize}-byte WAL segments; Tidemark archives only the default 16 MiB segments`);
  }
  if (header.pageAddress !== parseLsn(segmentStartLsn(name))) {
    throw new TidemarkError('INTEGRITY_FORMAT', `wal file ${name} starts at ${formatLsn(header.pageAddress)}, not at its segment's start; remove it from the spool`);
  }
  return 'ok';
}

/** Where each ancestor timeline of a history file ended (its switch point). */
export function parseHistory(content: string): Map<number, bigint> {
  return new Map(parseTimelineHistory(content).map((entry) => [entry.timeline, parseLsn(entry.switchLsn)] as const));
}
