// The portable export ("qdrant-export-v1"): a version- and topology-independent logical copy of
// one collection, as a byte stream that pipes into the pipeline's encodeStream.
//
//   magic "TMQX" 0x01, then frames: u32 big-endian length + one msgpack map, each tagged by `t`:
//     h  header   { formatVersion, kind, exportId, parentExportId?, collection, config, payloadSchema,
//                   includePayload, vectorEncoding: "f32le", incremental?, facts? }
//     p  points   { points: [{ i: id, v?: vector, n?: named vectors, p?: payload }] }   (one scroll page)
//     i  id set   { n: varint deltas of integer ids, u: concatenated 16-byte UUIDs } (incrementals:
//                  the collection's full id set in id order, for the next delta's deletions)
//     d  deletes  { ids: [...] }                                                      (incrementals)
//     t  trailer  { points, deleted, sha256, highWater? }   sha256 = of every byte before the trailer frame
//
// Dense vectors are float32 little-endian byte strings (Qdrant stores float32), sparse vectors
// { indices, values: f32le }, multivectors arrays of f32le rows. Any msgpack reader can parse it.
// A stream without its trailer, or whose hash or count differ, is rejected: never half-restored.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Packr } from 'msgpackr';
import { TidemarkError } from '@tidemark/contracts';
import { float32Bytes, isNamed, isSparse } from './canonical.js';
import type { CollectionInfo, Payload, PointId, PointVectors, QdrantPoint, QdrantPort, VectorValue } from './port.js';

export const EXPORT_FORMAT = 'qdrant-export-v1';
export const EXPORT_FORMAT_VERSION = 1;
const MAGIC = Buffer.from([0x54, 0x4d, 0x51, 0x58, EXPORT_FORMAT_VERSION]);
const MAX_FRAME_BYTES = 256 * 1024 * 1024;
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export interface ExportHeader {
  formatVersion: number;
  kind: 'export' | 'incremental';
  exportId: string;
  parentExportId?: string;
  collection: string;
  config: Record<string, unknown>;
  payloadSchema: Record<string, unknown>;
  includePayload: boolean;
  vectorEncoding: 'f32le';
  /** Incrementals: the payload timestamp field and the parent's high-water mark. */
  incremental?: { field: string; parentHighWater?: unknown };
  /** The manifest facts, when the caller collected them first. */
  facts?: unknown;
}

export interface ExportTrailer {
  points: number;
  deleted: number;
  sha256: string;
  /** Greatest value of the incremental field seen (the next delta starts after it). */
  highWater?: unknown;
}

export type ExportRecord =
  | { type: 'header'; header: ExportHeader }
  | { type: 'points'; points: QdrantPoint[] }
  | { type: 'ids'; ids: PointId[] }
  | { type: 'deletes'; ids: PointId[] }
  | { type: 'trailer'; trailer: ExportTrailer };

// ---------------------------------------------------------------- vectors

const f32 = (values: readonly number[]): Buffer => float32Bytes(values);

function fromF32(bytes: Uint8Array): number[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
  return out;
}

function encodeVector(v: VectorValue): unknown {
  if (isSparse(v)) return { indices: v.indices, values: f32(v.values) };
  if (Array.isArray(v[0])) return (v as number[][]).map(f32);
  return f32(v as number[]);
}

function decodeVector(v: unknown): VectorValue {
  if (v instanceof Uint8Array) return fromF32(v);
  if (Array.isArray(v)) return v.map((row) => fromF32(row as Uint8Array));
  const sparse = v as { indices: number[]; values: Uint8Array };
  return { indices: Array.from(sparse.indices), values: fromF32(sparse.values) };
}

export function encodePoint(point: QdrantPoint, includePayload: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { i: point.id };
  const v: PointVectors | undefined = point.vector;
  if (v !== undefined) {
    if (isNamed(v)) out.n = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encodeVector(x)]));
    else out.v = encodeVector(v);
  }
  if (includePayload && point.payload !== undefined) out.p = point.payload;
  return out;
}

export function decodePoint(raw: Record<string, unknown>): QdrantPoint {
  const point: QdrantPoint = { id: raw.i as PointId };
  if (raw.v !== undefined) point.vector = decodeVector(raw.v) as number[];
  if (raw.n !== undefined) point.vector = Object.fromEntries(Object.entries(raw.n as Record<string, unknown>).map(([k, x]) => [k, decodeVector(x)]));
  if (raw.p !== undefined) point.payload = raw.p as Payload;
  return point;
}

// ---------------------------------------------------------------- compact id sets

/** Ids in Qdrant order: integers as varint deltas, UUIDs as 16 raw bytes each. */
export function encodeIdSet(ids: readonly PointId[]): { n: Buffer; u: Buffer } {
  const varints: number[] = [];
  const uuids: Buffer[] = [];
  let previous = 0;
  for (const id of ids) {
    if (typeof id === 'string') {
      uuids.push(Buffer.from(id.replace(/-/g, ''), 'hex'));
      continue;
    }
    let delta = id - previous;
    previous = id;
    while (delta >= 0x80) {
      varints.push((delta % 0x80) | 0x80);
      delta = Math.floor(delta / 0x80);
    }
    varints.push(delta);
  }
  return { n: Buffer.from(varints), u: Buffer.concat(uuids) };
}

export function decodeIdSet(n: Uint8Array, u: Uint8Array): PointId[] {
  const ids: PointId[] = [];
  let previous = 0;
  for (let i = 0; i < n.length; ) {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = n[i++] as number;
      value += (byte & 0x7f) * scale;
      scale *= 0x80;
      if (byte < 0x80) break;
    }
    previous += value;
    ids.push(previous);
  }
  for (let i = 0; i + 16 <= u.length; i += 16) {
    const h = Buffer.from(u.subarray(i, i + 16)).toString('hex');
    ids.push(`${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`);
  }
  return ids;
}

// ---------------------------------------------------------------- writing

/** Frames records and keeps the running hash and counts for the trailer. */
export class FrameWriter {
  private readonly hash = createHash('sha256');
  points = 0;
  deleted = 0;

  start(): Buffer {
    this.hash.update(MAGIC);
    return MAGIC;
  }

  frame(record: Record<string, unknown>): Buffer {
    const body = packr.pack(record);
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(body.length, 0);
    const out = Buffer.concat([length, body]);
    this.hash.update(out);
    return out;
  }

  header(header: ExportHeader): Buffer {
    return this.frame({ t: 'h', ...header });
  }

  page(points: readonly QdrantPoint[], includePayload: boolean): Buffer {
    this.points += points.length;
    return this.frame({ t: 'p', points: points.map((p) => encodePoint(p, includePayload)) });
  }

  ids(ids: readonly PointId[]): Buffer {
    return this.frame({ t: 'i', ...encodeIdSet(ids) });
  }

  deletes(ids: readonly PointId[]): Buffer {
    this.deleted += ids.length;
    return this.frame({ t: 'd', ids });
  }

  trailer(highWater?: unknown): { bytes: Buffer; trailer: ExportTrailer } {
    const trailer: ExportTrailer = { points: this.points, deleted: this.deleted, sha256: this.hash.digest('hex'), ...(highWater === undefined ? {} : { highWater }) };
    const body = packr.pack({ t: 't', ...trailer });
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(body.length, 0);
    return { bytes: Buffer.concat([length, body]), trailer };
  }
}

/** Whether timestamp `a` is later than `b` (numbers, or ISO-8601 strings). */
export function isLater(a: unknown, b: unknown): boolean {
  if (b === undefined || b === null) return a !== undefined && a !== null;
  if (typeof a === 'number' && typeof b === 'number') return a > b;
  if (typeof a === 'string' && typeof b === 'string') return Date.parse(a) > Date.parse(b);
  return false;
}

export function trackHighWater(points: readonly QdrantPoint[], field: string | undefined, current: unknown): unknown {
  if (field === undefined) return current;
  let mark = current;
  for (const p of points) {
    const value = p.payload?.[field];
    if ((typeof value === 'number' || typeof value === 'string') && isLater(value, mark)) mark = value;
  }
  return mark;
}

export interface ExportOptions {
  readonly collection: string;
  /** The artifact id, recorded so a later delta can name this export as its parent. */
  readonly exportId: string;
  readonly includePayload?: boolean;
  /** Points per scroll page (default 256). */
  readonly pageSize?: number;
  /** Payload timestamp field whose greatest value becomes the trailer's high-water mark. */
  readonly incrementalField?: string;
  readonly facts?: unknown;
}

export interface ExportStream {
  /** The export's bytes: pipe into encodeStream. Scrolls the next page only when read. */
  readonly stream: Readable;
  /** Resolves with the trailer once the stream has been fully produced. */
  readonly trailer: Promise<ExportTrailer>;
}

/** What a scroll must ask for to export: all payload, or only the incremental field. */
export function payloadSelector(includePayload: boolean, field: string | undefined): boolean | string[] {
  if (includePayload) return true;
  return field === undefined ? false : [field];
}

/** Wraps an async generator of frames as a byte Readable with backpressure and a trailer promise. */
export function framesToStream(frames: (done: (t: ExportTrailer) => void) => AsyncGenerator<Buffer>): ExportStream {
  let resolve!: (t: ExportTrailer) => void;
  let reject!: (e: unknown) => void;
  const trailer = new Promise<ExportTrailer>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  trailer.catch(() => undefined);
  async function* guarded(): AsyncGenerator<Buffer> {
    try {
      yield* frames(resolve);
    } catch (error) {
      reject(error);
      throw error;
    }
  }
  // Readable.from pulls the generator only when its buffer drains: one scroll per page wanted.
  const stream = Readable.from(guarded(), { objectMode: false, highWaterMark: 64 * 1024 });
  stream.once('close', () => reject(new TidemarkError('INTERNAL', 'the export stream was closed before it finished')));
  return { stream, trailer };
}

/** How one kind of export differs from another; the rest of the stream is the same for all. */
export interface ExportShape {
  readonly kind: ExportHeader['kind'];
  readonly parentExportId?: string;
  readonly incremental?: ExportHeader['incremental'];
  /** Frames between the header and the points (a delta's id set and deletions). */
  readonly before?: (writer: FrameWriter, pageSize: number) => AsyncGenerator<Buffer>;
  /** Which points to export (all when undefined), and the high-water mark to start from. */
  readonly filter?: Record<string, unknown>;
  readonly highWater?: unknown;
}

/** The header, the shape's own frames, the (filtered) points page by page, and the trailer. */
export function streamExport(port: QdrantPort, options: ExportOptions, shape: ExportShape): ExportStream {
  const includePayload = options.includePayload ?? true;
  const pageSize = options.pageSize ?? 256;
  return framesToStream(async function* (done) {
    const info: CollectionInfo = await port.getCollection(options.collection);
    const writer = new FrameWriter();
    yield writer.start();
    yield writer.header({
      formatVersion: EXPORT_FORMAT_VERSION,
      kind: shape.kind,
      exportId: options.exportId,
      ...(shape.parentExportId === undefined ? {} : { parentExportId: shape.parentExportId }),
      collection: options.collection,
      config: info.config,
      payloadSchema: info.payloadSchema,
      includePayload,
      vectorEncoding: 'f32le',
      ...(shape.incremental === undefined ? {} : { incremental: shape.incremental }),
      ...(options.facts === undefined ? {} : { facts: options.facts }),
    });
    if (shape.before !== undefined) yield* shape.before(writer, pageSize);
    let highWater = shape.highWater;
    const selection = { pageSize, withVector: true, withPayload: payloadSelector(includePayload, options.incrementalField) };
    for await (const points of scrollPages(port, options.collection, shape.filter === undefined ? selection : { ...selection, filter: shape.filter })) {
      highWater = trackHighWater(points, options.incrementalField, highWater);
      yield writer.page(points, includePayload);
    }
    const { bytes, trailer } = writer.trailer(highWater);
    yield bytes;
    done(trailer);
  });
}

/** A full export of one collection. */
export function exportCollection(port: QdrantPort, options: ExportOptions): ExportStream {
  return streamExport(port, options, { kind: 'export', ...(options.incrementalField === undefined ? {} : { incremental: { field: options.incrementalField } }) });
}

/** Scroll pages in id order; each page is fetched only when the previous one was consumed. */
export async function* scrollPages(
  port: QdrantPort,
  collection: string,
  options: { pageSize: number; withVector: boolean; withPayload: boolean | string[]; filter?: Record<string, unknown> },
): AsyncGenerator<QdrantPoint[]> {
  let offset: PointId | null = null;
  for (;;) {
    const page = await port.scroll(collection, {
      limit: options.pageSize,
      offset,
      withVector: options.withVector,
      withPayload: options.withPayload,
      ...(options.filter === undefined ? {} : { filter: options.filter }),
    });
    if (page.points.length > 0) yield page.points;
    if (page.nextOffset === null || page.points.length === 0) return;
    offset = page.nextOffset;
  }
}

// ---------------------------------------------------------------- reading

const truncated = () => new TidemarkError('INTEGRITY_TRUNCATED', 'the qdrant export ends before its trailer; the artifact is incomplete, restore another one');
const badFormat = (what: string) => new TidemarkError('INTEGRITY_FORMAT', `not a qdrant export (${EXPORT_FORMAT}): ${what}`);

/** Reads exactly `n` bytes from a chunk iterator, keeping the rest for the next call. */
class ByteReader {
  private chunks: Buffer[] = [];
  private length = 0;
  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array | string>) {}

  /** Undefined at a clean end of stream (no bytes pending); throws when it ends mid-read. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.length < n) {
      const next = await this.source.next();
      if (next.done) {
        if (this.length === 0) return undefined;
        throw truncated();
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }
}

/**
 * Parses an export (decoded bytes) into records, checking the magic, every frame, the trailer's
 * hash and counts. Records are yielded as they are read: a consumer that upserts them holds one
 * page at a time. Anything after the trailer, a missing trailer or a wrong hash throws.
 */
export async function* readExport(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<ExportRecord> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  const hash = createHash('sha256');
  const magic = await reader.read(MAGIC.length);
  if (magic === undefined) throw truncated();
  if (!magic.subarray(0, 4).equals(MAGIC.subarray(0, 4))) throw badFormat('wrong magic bytes');
  if (magic[4] !== EXPORT_FORMAT_VERSION) throw badFormat(`format version ${magic[4]} is not supported by this build`);
  hash.update(magic);
  let points = 0;
  let deleted = 0;
  let sawHeader = false;
  for (;;) {
    const prefix = await reader.read(4);
    if (prefix === undefined) throw truncated();
    const length = prefix.readUInt32BE(0);
    if (length > MAX_FRAME_BYTES) throw badFormat(`a frame of ${length} bytes is larger than allowed`);
    const body = await reader.read(length);
    if (body === undefined) throw truncated();
    let record: Record<string, unknown>;
    try {
      record = packr.unpack(body) as Record<string, unknown>;
    } catch (cause) {
      throw new TidemarkError('INTEGRITY_FORMAT', `a qdrant export frame is not valid msgpack: ${(cause as Error).message}`, { cause });
    }
    if (!sawHeader && record.t !== 'h') throw badFormat('the first record is not a header');
    if (record.t === 't') {
      const trailer = record as unknown as ExportTrailer & { t: string };
      const sha256 = hash.digest('hex');
      if (trailer.sha256 !== sha256) throw new TidemarkError('INTEGRITY_CHECKSUM_MISMATCH', `the qdrant export's content hash ${sha256} differs from its trailer's ${trailer.sha256}`);
      if (trailer.points !== points || trailer.deleted !== deleted) throw badFormat(`the trailer counts ${trailer.points} points and ${deleted} deletions, the stream held ${points} and ${deleted}`);
      if ((await reader.read(1)) !== undefined) throw badFormat('bytes follow the trailer');
      const { t: _t, ...rest } = trailer;
      yield { type: 'trailer', trailer: rest };
      return;
    }
    hash.update(prefix);
    hash.update(body);
    switch (record.t) {
      case 'h': {
        if (sawHeader) throw badFormat('a second header');
        sawHeader = true;
        const { t: _t, ...header } = record;
        yield { type: 'header', header: header as unknown as ExportHeader };
        break;
      }
      case 'p': {
        const page = (record.points as Record<string, unknown>[]).map(decodePoint);
        points += page.length;
        yield { type: 'points', points: page };
        break;
      }
      case 'i':
        yield { type: 'ids', ids: decodeIdSet(record.n as Uint8Array, record.u as Uint8Array) };
        break;
      case 'd': {
        const ids = record.ids as PointId[];
        deleted += ids.length;
        yield { type: 'deletes', ids };
        break;
      }
      default:
        throw badFormat(`unknown record type ${JSON.stringify(record.t)}`);
    }
  }
}
