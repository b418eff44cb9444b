// Incremental exports (deltas) and chains. Qdrant has no change feed (qdrant#7278), so a delta is:
//   - the points whose payload timestamp `incrementalField` is later than the parent's high-water
//     mark (upserted on restore), and
//   - the points deleted since the parent, found by merging the collection's id set with the
//     parent's (both in Qdrant's id order, so memory stays flat whatever the collection size).
// Each delta stores the collection's full id set compactly (varint deltas, raw UUID bytes) so
// the next delta can compare against it; a full export's id set is its points pages.
//
// What it cannot see: a point changed without moving its timestamp forward (writers must set
// the field on every write; points without it are only captured by full exports), and, because
// Qdrant reads are not isolated, writes that land while the delta is being read may show up in
// this delta or the next one. The id set is read first, then the changed points.
import { TidemarkError } from '@tidemark/contracts';
import { compareIds } from './canonical.js';
import {
  readExport, scrollPages, streamExport, type ExportOptions, type ExportStream, type FrameWriter,
} from './export-format.js';
import type { PointId, QdrantPort } from './port.js';

export interface DeltaOptions extends Omit<ExportOptions, 'incrementalField'> {
  readonly incrementalField: string;
  readonly parentExportId: string;
  /** The parent's trailer high-water mark; undefined (the parent saw no timestamps) takes every point. */
  readonly parentHighWater: unknown;
  /** The parent's id set in id order (see readIdSet). */
  readonly parentIds: AsyncIterable<PointId>;
}

/** The Qdrant filter for points changed after `highWater` (numbers, or RFC 3339 datetimes). */
export function changedSince(field: string, highWater: unknown): Record<string, unknown> | undefined {
  if (highWater === undefined || highWater === null) return undefined;
  return { must: [{ key: field, range: { gt: highWater } }] };
}

function outOfOrder(previous: PointId, id: PointId): TidemarkError {
  return new TidemarkError('INTEGRITY_FORMAT', `ids are not in qdrant's id order (${String(previous)} before ${String(id)}); an id-set comparison is impossible, take a full export`);
}

/** Checks that an id stream is strictly increasing in Qdrant's order. */
async function* ordered(ids: AsyncIterable<PointId>): AsyncGenerator<PointId> {
  let previous: PointId | undefined;
  for await (const id of ids) {
    if (previous !== undefined && compareIds(previous, id) >= 0) throw outOfOrder(previous, id);
    previous = id;
    yield id;
  }
}

/** A delta export against its parent. */
export function exportDelta(port: QdrantPort, options: DeltaOptions): ExportStream {
  return streamExport(port, options, {
    kind: 'incremental',
    parentExportId: options.parentExportId,
    incremental: { field: options.incrementalField, parentHighWater: options.parentHighWater },
    before: (writer, pageSize) => idSetAndDeletions(port, options, writer, pageSize),
    // The points changed since the parent's high-water mark.
    filter: changedSince(options.incrementalField, options.parentHighWater),
    highWater: options.parentHighWater,
  });
}

/** The id set, merged with the parent's: parent ids missing here were deleted. */
async function* idSetAndDeletions(port: QdrantPort, options: DeltaOptions, writer: FrameWriter, pageSize: number): AsyncGenerator<Buffer> {
  const parent = ordered(options.parentIds)[Symbol.asyncIterator]();
  let next = await parent.next();
  let deletions: PointId[] = [];
  let previous: PointId | undefined;
  for await (const page of scrollPages(port, options.collection, { pageSize, withVector: false, withPayload: false })) {
    const ids = page.map((p) => p.id);
    for (const id of ids) {
      if (previous !== undefined && compareIds(previous, id) >= 0) throw outOfOrder(previous, id);
      previous = id;
      while (!next.done && compareIds(next.value, id) < 0) {
        deletions.push(next.value);
        next = await parent.next();
      }
      if (!next.done && compareIds(next.value, id) === 0) next = await parent.next();
    }
    yield writer.ids(ids);
    if (deletions.length >= pageSize) {
      yield writer.deletes(deletions);
      deletions = [];
    }
  }
  while (!next.done) {
    deletions.push(next.value);
    if (deletions.length >= pageSize) {
      yield writer.deletes(deletions);
      deletions = [];
    }
    next = await parent.next();
  }
  if (deletions.length > 0) yield writer.deletes(deletions);
}

/**
 * The id set an export leaves behind, in id order: a full export's point ids, or a delta's
 * stored id set. Reads (and so checks) the whole export.
 */
export async function* readIdSet(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<PointId> {
  let kind: string | undefined;
  for await (const record of readExport(source)) {
    if (record.type === 'header') kind = record.header.kind;
    else if (record.type === 'points' && kind === 'export') for (const p of record.points) yield p.id;
    else if (record.type === 'ids' && kind === 'incremental') yield* record.ids;
  }
}

export interface ChainLink {
  readonly id: string;
  readonly kind: string;
  readonly parentId?: string | undefined;
}

/**
 * The order a chain is applied in to restore `target`: the full export first, then each delta
 * from oldest to newest, ending with the target itself.
 */
export async function chainApplyOrder(targetId: string, lookup: (id: string) => Promise<ChainLink | undefined>, maxLength = 1000): Promise<ChainLink[]> {
  const chain: ChainLink[] = [];
  const seen = new Set<string>();
  let id: string | undefined = targetId;
  while (id !== undefined) {
    if (seen.has(id) || chain.length >= maxLength) throw new TidemarkError('INTEGRITY_FORMAT', `the export chain of ${targetId} loops or exceeds ${maxLength} links; take a full export`);
    seen.add(id);
    const link = await lookup(id);
    if (link === undefined) throw new TidemarkError('ARTIFACT_NOT_FOUND', `export ${id} in the chain of ${targetId} is missing; restore an older full export or take a new one`);
    chain.push(link);
    if (link.kind === 'export') return chain.reverse();
    if (link.kind !== 'incremental') throw new TidemarkError('INTEGRITY_FORMAT', `artifact ${id} (kind ${link.kind}) cannot be part of an export chain`);
    if (link.parentId === undefined) throw new TidemarkError('INTEGRITY_FORMAT', `incremental ${id} names no parent`);
    id = link.parentId;
  }
  throw new TidemarkError('INTEGRITY_FORMAT', `the export chain of ${targetId} has no full export`);
}
