// An in-memory QdrantPort for unit tests: real state, Qdrant's id order, range filters, brute
// force queries, snapshots as bytes, aliases, recorded snapshot uploads, and failure injection per method.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { compareIds, idKey, type CollectionInfo, type PointId, type QdrantPoint, type QdrantPort, type ScrollRequest, type SnapshotInfo } from '@tidemark/qdrant';

interface Collection {
  body: Record<string, unknown>;
  points: Map<string, QdrantPoint>;
  snapshots: Map<string, Buffer>;
}

export interface FakePort extends QdrantPort {
  readonly collections: Map<string, Collection>;
  readonly aliases: Map<string, string>;
  /** Makes the next calls of `method` throw `error`. */
  failNext(method: keyof QdrantPort, error: unknown, times?: number): void;
  calls: Record<string, number>;
  all(name: string): QdrantPoint[];
  readonly uploads: { name: string; checksum?: string | undefined; priority: string }[];
}

const clone = <T>(v: T): T => structuredClone(v);

function matches(point: QdrantPoint, filter: Record<string, unknown> | undefined): boolean {
  if (filter === undefined) return true;
  const must = (filter.must ?? []) as { key: string; range: { gt?: unknown } }[];
  return must.every((c) => {
    const v = point.payload?.[c.key];
    const gt = c.range.gt;
    if (typeof v === 'number' && typeof gt === 'number') return v > gt;
    if (typeof v === 'string' && typeof gt === 'string') return Date.parse(v) > Date.parse(gt);
    return false;
  });
}

function pick(point: QdrantPoint, withVector: boolean, withPayload: boolean | string[]): QdrantPoint {
  const out: QdrantPoint = { id: point.id };
  if (withVector && point.vector !== undefined) out.vector = clone(point.vector);
  if (withPayload === true) out.payload = clone(point.payload ?? {});
  else if (Array.isArray(withPayload)) out.payload = Object.fromEntries(withPayload.filter((k) => point.payload && k in point.payload).map((k) => [k, clone(point.payload?.[k])]));
  return out;
}

export function fakePort(version = '1.19.0'): FakePort {
  const collections = new Map<string, Collection>();
  const aliases = new Map<string, string>();
  const failures = new Map<string, { error: unknown; times: number }>();
  const calls: Record<string, number> = {};
  const uploads: FakePort['uploads'] = [];
  const resolve = (name: string): Collection => {
    const c = collections.get(aliases.get(name) ?? name);
    if (!c) throw Object.assign(new Error(`collection ${name} not found`), { status: 404, data: { status: { error: `Not found: Collection \`${name}\` doesn't exist!` } } });
    return c;
  };
  const sorted = (c: Collection) => [...c.points.values()].sort((a, b) => compareIds(a.id, b.id));

  const impl: QdrantPort = {
    async version() { return version; },
    async cluster() { return { enabled: false, peers: 1 }; },
    async listCollections() { return [...collections.keys()].sort(); },
    async collectionExists(name) { return collections.has(name); },
    async getCollection(name): Promise<CollectionInfo> {
      const c = resolve(name);
      const { vectors, sparse_vectors, shard_number, replication_factor, on_disk_payload, hnsw_config } = c.body as Record<string, unknown>;
      return {
        status: 'green',
        pointsCount: c.points.size,
        config: { params: { vectors, sparse_vectors, shard_number: shard_number ?? 1, replication_factor: replication_factor ?? 1, on_disk_payload: on_disk_payload ?? true }, hnsw_config: hnsw_config ?? { m: 16 }, quantization_config: null },
        payloadSchema: {},
      };
    },
    async createCollection(name, body) {
      if (collections.has(name)) throw Object.assign(new Error('exists'), { status: 409 });
      collections.set(name, { body: clone(body), points: new Map(), snapshots: new Map() });
    },
    async createPayloadIndex() {},
    async deleteCollection(name) { collections.delete(name); },
    async count(name, filter) { return [...resolve(name).points.values()].filter((p) => matches(p, filter)).length; },
    async scroll(name, request: ScrollRequest) {
      const all = sorted(resolve(name)).filter((p) => matches(p, request.filter));
      const start = request.offset === undefined || request.offset === null ? 0 : all.findIndex((p) => compareIds(p.id, request.offset as PointId) >= 0);
      const from = start < 0 ? all.length : start;
      const page = all.slice(from, from + request.limit);
      const next = all[from + request.limit];
      return { points: page.map((p) => pick(p, request.withVector, request.withPayload)), nextOffset: next ? next.id : null };
    },
    async upsert(name, points) {
      const c = resolve(name);
      for (const p of points) c.points.set(idKey(p.id), { id: p.id, ...(p.vector === undefined ? {} : { vector: clone(p.vector) }), payload: clone(p.payload ?? {}) });
    },
    async deletePoints(name, ids) { const c = resolve(name); for (const id of ids) c.points.delete(idKey(id)); },
    async query(name, request) {
      const q = request.vector as number[];
      const scored = sorted(resolve(name)).map((p) => {
        const v = (request.using === undefined ? p.vector : (p.vector as Record<string, number[]>)[request.using]) as number[];
        return { id: p.id, score: v.reduce((s, x, i) => s + x * (q[i] ?? 0), 0) };
      });
      return scored.sort((a, b) => b.score - a.score || compareIds(a.id, b.id)).slice(0, request.limit).map((s) => s.id);
    },
    async listAliases() { return [...aliases].map(([alias, collection]) => ({ alias, collection })); },
    async updateAliases(actions) {
      for (const a of actions) {
        if (a.op === 'delete') aliases.delete(a.alias);
        else aliases.set(a.alias, a.collection as string);
      }
    },
    async createSnapshot(name): Promise<SnapshotInfo> {
      const c = resolve(name);
      const bytes = Buffer.from(JSON.stringify({ body: c.body, points: sorted(c) }));
      const snap = `${name}-${c.snapshots.size + 1}.snapshot`;
      c.snapshots.set(snap, bytes);
      return { name: snap, size: bytes.length, checksum: createHash('sha256').update(bytes).digest('hex') };
    },
    async listSnapshots(name) {
      return [...resolve(name).snapshots].map(([n, b]) => ({ name: n, size: b.length, checksum: createHash('sha256').update(b).digest('hex') }));
    },
    async deleteSnapshot(name, snapshot) { resolve(name).snapshots.delete(snapshot); },
    async downloadSnapshot(name, snapshot) {
      const bytes = resolve(name).snapshots.get(snapshot);
      if (!bytes) throw Object.assign(new Error('no snapshot'), { status: 404 });
      return Readable.from([bytes.subarray(0, 10), bytes.subarray(10)]);
    },
    async uploadSnapshot(name, body, options) {
      uploads.push({ name, checksum: options.checksum, priority: options.priority });
      const parsed = JSON.parse((await buffer(body)).toString()) as { body: Record<string, unknown>; points: QdrantPoint[] };
      collections.set(name, { body: parsed.body, points: new Map(parsed.points.map((p) => [idKey(p.id), p])), snapshots: new Map() });
    },
  };
  const port = Object.fromEntries(
    Object.entries(impl).map(([key, fn]) => [
      key,
      async (...args: unknown[]) => {
        calls[key] = (calls[key] ?? 0) + 1;
        const failure = failures.get(key);
        if (failure && failure.times > 0) {
          failure.times--;
          throw failure.error;
        }
        return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      },
    ]),
  ) as unknown as QdrantPort;
  return Object.assign(port, {
    collections,
    aliases,
    calls,
    uploads,
    failNext(method: keyof QdrantPort, error: unknown, times = 1) { failures.set(method, { error, times }); },
    all: (name: string) => sorted(resolve(name)),
  });
}

/** A deterministic collection: `count` points with `dim`-dimensional vectors and payloads. */
export async function seed(port: QdrantPort, name: string, count: number, options: { dim?: number; start?: number; ts?: number } = {}): Promise<void> {
  const dim = options.dim ?? 8;
  if (!(await port.collectionExists(name))) await port.createCollection(name, { vectors: { size: dim, distance: 'Dot' } });
  const points: QdrantPoint[] = [];
  for (let i = 0; i < count; i++) {
    const n = (options.start ?? 0) + i;
    points.push({ id: n, vector: Array.from({ length: dim }, (_, j) => Math.fround(Math.sin(n * 7 + j))), payload: { n, label: `p${n}`, tags: ['a', n % 2 ? 'odd' : 'even'], updatedAt: options.ts ?? 1 } });
  }
  for (let i = 0; i < points.length; i += 500) await port.upsert(name, points.slice(i, i + 500));
}
