// One collection's state and the point operations on it: upsert, delete, scroll, count, query
// (exact nearest neighbours by the collection's distance), retrieve. Points are immutable records
// that an upsert replaces, so a snapshot can take a consistent copy by reference.
import { badRequest, unsupported, validation, wrongInput } from './errors.js';
import { compareIds, idKey, parsePointId, shardOf } from './ids.js';
import { compileFilter, type FilterTarget } from './filter.js';
import type { Distance, Filter, Payload, PointId, Schemas, VectorParams } from './types.js';

/** The full configuration of a collection, as `GET /collections/{name}` returns it in `config`. */
export type CollectionConfig = Schemas['CollectionConfig'];

export interface StoredPoint extends FilterTarget {
  readonly id: PointId;
  /** Vectors by name; a collection with one unnamed vector uses the name "". */
  readonly vectors: ReadonlyMap<string, Float32Array>;
  readonly payload: Payload;
  /** The operation that last wrote the point. */
  readonly version: number;
}

const DISTANCES: readonly Distance[] = ['Cosine', 'Euclid', 'Dot', 'Manhattan'];
const MAX_DIMENSION = 65_536;

const DEFAULT_HNSW: Schemas['HnswConfig'] = { m: 16, ef_construct: 100, full_scan_threshold: 10_000, max_indexing_threads: 0, on_disk: false };
const DEFAULT_OPTIMIZER: Schemas['OptimizersConfig'] = {
  deleted_threshold: 0.2,
  vacuum_min_vector_number: 1000,
  default_segment_number: 0,
  max_segment_size: null,
  memmap_threshold: null,
  indexing_threshold: 10_000,
  flush_interval_sec: 5,
  max_optimization_threads: null,
};
const DEFAULT_WAL: Schemas['WalConfig'] = { wal_capacity_mb: 32, wal_segments_ahead: 0, wal_retain_closed: 1 };

/** Merges the non-null fields of a `*Diff` over defaults. */
function merge<T extends object>(defaults: T, diff: unknown): T {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  if (diff !== null && typeof diff === 'object') {
    for (const [key, value] of Object.entries(diff)) if (value !== null && value !== undefined) out[key] = value;
  }
  return out as T;
}

function checkVectorParams(name: string, params: unknown): VectorParams {
  const where = name === '' ? 'vectors' : `vectors.${name}`;
  if (params === null || typeof params !== 'object') throw badRequest(`Json deserialize error: ${where} must be an object with size and distance`);
  const p = params as Partial<VectorParams>;
  if (typeof p.size !== 'number' || !Number.isInteger(p.size)) throw badRequest(`Json deserialize error: missing field \`size\` in ${where}`);
  if (p.size < 1 || p.size > MAX_DIMENSION) throw validation(`${where}.size: value ${p.size} invalid, must be from 1 to ${MAX_DIMENSION}`);
  if (!DISTANCES.includes(p.distance as Distance)) {
    throw badRequest(`Json deserialize error: unknown variant \`${String(p.distance)}\`, expected one of \`Cosine\`, \`Euclid\`, \`Dot\`, \`Manhattan\``);
  }
  if (p.multivector_config) throw unsupported('multivector_config');
  return p as VectorParams;
}

/** Validates a create request and builds the config the server then reports. */
export function configFromCreate(body: Schemas['CreateCollection']): CollectionConfig {
  const shardNumber = body.shard_number ?? 1;
  const replicationFactor = body.replication_factor ?? 1;
  const writeConsistency = body.write_consistency_factor ?? 1;
  for (const [field, value] of [['shard_number', shardNumber], ['replication_factor', replicationFactor], ['write_consistency_factor', writeConsistency]] as const) {
    if (!Number.isInteger(value) || value < 1) throw validation(`${field}: value ${value} invalid, must be 1 or larger`);
  }
  if (body.sharding_method === 'custom') throw unsupported('custom sharding');
  if (body.sparse_vectors && Object.keys(body.sparse_vectors).length > 0) throw unsupported('sparse vectors');
  let vectors: Schemas['VectorsConfig'] = {};
  if (body.vectors !== undefined && body.vectors !== null) {
    if ('size' in body.vectors || 'distance' in body.vectors) vectors = checkVectorParams('', body.vectors);
    else {
      const named: Record<string, VectorParams> = {};
      for (const [name, params] of Object.entries(body.vectors)) named[name] = checkVectorParams(name, params);
      vectors = named;
    }
  }
  const params: Schemas['CollectionParams'] = {
    vectors,
    shard_number: shardNumber,
    replication_factor: replicationFactor,
    write_consistency_factor: writeConsistency,
    on_disk_payload: body.on_disk_payload ?? true,
  };
  if (body.sharding_method) params.sharding_method = body.sharding_method;
  return {
    params,
    hnsw_config: merge(DEFAULT_HNSW, body.hnsw_config),
    optimizer_config: merge(DEFAULT_OPTIMIZER, body.optimizers_config),
    wal_config: merge(DEFAULT_WAL, body.wal_config),
    quantization_config: (body.quantization_config as Schemas['QuantizationConfig'] | undefined) ?? null,
    strict_mode_config: merge({ enabled: false } as Schemas['StrictModeConfigOutput'], body.strict_mode_config),
    ...(body.metadata ? { metadata: body.metadata as Payload } : {}),
  };
}

export type WithPayload = Schemas['WithPayloadInterface'] | Record<string, unknown> | null | undefined;
export type WithVector = Schemas['WithVector'] | Record<string, unknown> | null | undefined;

export class Collection {
  /** Vector params by name ("" for a single unnamed vector). */
  readonly vectorSpecs: ReadonlyMap<string, VectorParams>;
  /** Whether the collection was created with named vectors (points then carry `{name: vector}`). */
  readonly named: boolean;
  readonly shardNumber: number;
  private readonly points = new Map<string, StoredPoint>();
  private sorted: StoredPoint[] | undefined;
  private operation = 0;

  constructor(readonly config: CollectionConfig) {
    const vectors = config.params.vectors ?? {};
    const specs = new Map<string, VectorParams>();
    if ('size' in vectors && 'distance' in vectors) {
      specs.set('', vectors as VectorParams);
      this.named = false;
    } else {
      for (const [name, params] of Object.entries(vectors as Record<string, VectorParams | undefined>)) if (params) specs.set(name, params);
      this.named = true;
    }
    this.vectorSpecs = specs;
    this.shardNumber = config.params.shard_number ?? 1;
  }

  get pointsCount(): number {
    return this.points.size;
  }

  info(): Schemas['CollectionInfo'] {
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: this.points.size,
      segments_count: this.shardNumber,
      config: this.config,
      payload_schema: {},
      update_queue: { length: 0 },
    };
  }

  /** All points sorted by id (cached until the next write). */
  allPoints(): readonly StoredPoint[] {
    this.sorted ??= [...this.points.values()].sort((a, b) => compareIds(a.id, b.id));
    return this.sorted;
  }

  shardPoints(shard: number): StoredPoint[] {
    return this.allPoints().filter((p) => shardOf(p.id, this.shardNumber) === shard);
  }

  /**
   * Builds a stored point from a request point or (`stored`) a snapshot record, validating its
   * vectors. Request vectors are normalised for Cosine, as Qdrant does; stored ones already are.
   */
  makePoint(rawId: unknown, vector: unknown, payload: unknown, version: number, stored = false): StoredPoint {
    const id = parsePointId(rawId);
    const vectors = new Map<string, Float32Array>();
    if (Array.isArray(vector)) {
      if (this.named && !this.vectorSpecs.has('')) throw wrongInput('Not existing vector name error: ');
      vectors.set('', this.toVector('', vector, stored));
    } else if (vector !== null && typeof vector === 'object') {
      for (const [name, value] of Object.entries(vector)) {
        if (stored && value instanceof Float32Array) {
          const spec = this.vectorSpecs.get(name);
          if (!spec) throw wrongInput(`Not existing vector name error: ${name}`);
          if (value.length !== spec.size) throw wrongInput(`Vector dimension error: expected dim: ${spec.size}, got ${value.length}`);
          vectors.set(name, value);
          continue;
        }
        if (!Array.isArray(value)) throw unsupported(`the vector \`${name}\` (only dense vectors are supported)`);
        vectors.set(name, this.toVector(name, value, stored));
      }
    } else if (vector !== undefined && vector !== null) {
      throw badRequest(`Json deserialize error: invalid vector for point ${JSON.stringify(id)}`);
    }
    if (!this.named && !vectors.has('') && this.vectorSpecs.has('')) throw wrongInput(`Not existing vector name error: point ${JSON.stringify(id)} has no vector`);
    let kept: Payload = {};
    if (payload !== undefined && payload !== null) {
      if (typeof payload !== 'object' || Array.isArray(payload)) throw badRequest('Json deserialize error: payload must be a JSON object');
      kept = payload as Payload;
    }
    return { id, vectors, payload: kept, version, vectorNames: new Set(vectors.keys()) };
  }

  private toVector(name: string, values: unknown[], stored = false): Float32Array {
    const spec = this.vectorSpecs.get(name);
    if (!spec) throw wrongInput(`Not existing vector name error: ${name}`);
    if (values.length > 0 && Array.isArray(values[0])) throw unsupported('multivectors');
    if (values.length !== spec.size) throw wrongInput(`Vector dimension error: expected dim: ${spec.size}, got ${values.length}`);
    const vector = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`Json deserialize error: vector \`${name}\` has a non-numeric value at ${i}`);
      vector[i] = v;
    }
    if (spec.distance === 'Cosine' && !stored) normalise(vector);
    return vector;
  }

  /** Applies a batch atomically: every point is validated before any is stored. */
  upsert(body: Schemas['PointInsertOperations']): Schemas['UpdateResult'] {
    if ((body as Schemas['PointsList']).update_filter) throw unsupported('update_filter');
    if ((body as Schemas['PointsList']).shard_key) throw unsupported('shard_key');
    const version = ++this.operation;
    const made: StoredPoint[] = [];
    if ('points' in body) {
      if (!Array.isArray(body.points)) throw badRequest('Json deserialize error: points must be an array');
      for (const p of body.points) made.push(this.makePoint(p.id, p.vector, p.payload, version));
    } else if ('batch' in body) {
      const { ids, vectors, payloads } = body.batch;
      const columns = Array.isArray(vectors) ? { '': vectors } : (vectors as Record<string, unknown[]>);
      ids.forEach((id, i) => {
        const vector = this.named ? Object.fromEntries(Object.entries(columns).map(([name, column]) => [name, column[i]])) : columns['']?.[i];
        made.push(this.makePoint(id, vector, payloads?.[i], version));
      });
    } else {
      throw badRequest('Json deserialize error: expected `points` or `batch`');
    }
    for (const point of made) this.points.set(idKey(point.id), point);
    this.sorted = undefined;
    return { operation_id: version, status: 'completed' };
  }

  /** Replaces the points of one shard (shard snapshot recovery). */
  replaceShard(shard: number, points: readonly StoredPoint[]): void {
    for (const p of this.shardPoints(shard)) this.points.delete(idKey(p.id));
    this.load(points);
  }

  /** Adds points built by makePoint (snapshot recovery), keeping their versions. */
  load(points: Iterable<StoredPoint>): void {
    for (const point of points) {
      this.points.set(idKey(point.id), point);
      if (point.version > this.operation) this.operation = point.version;
    }
    this.sorted = undefined;
  }

  delete(selector: Schemas['PointsSelector']): Schemas['UpdateResult'] {
    const version = ++this.operation;
    if ('points' in selector) {
      for (const id of selector.points) this.points.delete(idKey(parsePointId(id)));
    } else if ('filter' in selector) {
      const match = compileFilter(selector.filter);
      for (const [key, point] of this.points) if (match(point)) this.points.delete(key);
    } else {
      throw badRequest('Json deserialize error: expected `points` or `filter`');
    }
    this.sorted = undefined;
    return { operation_id: version, status: 'completed' };
  }

  scroll(request: Schemas['ScrollRequest']): Schemas['ScrollResult'] {
    if (request.order_by) throw unsupported('scroll order_by');
    const limit = request.limit ?? 10;
    if (!Number.isInteger(limit) || limit < 1) throw validation(`limit: value ${limit} invalid, must be 1 or larger`);
    const match = compileFilter(request.filter as Filter | null | undefined);
    const all = this.allPoints();
    let start = 0;
    if (request.offset !== undefined && request.offset !== null) {
      const offset = parsePointId(request.offset);
      start = lowerBound(all, offset);
    }
    const points: Schemas['Record'][] = [];
    let next: PointId | null = null;
    for (let i = start; i < all.length; i++) {
      const point = all[i] as StoredPoint;
      if (!match(point)) continue;
      if (points.length === limit) {
        next = point.id;
        break;
      }
      points.push(this.record(point, request.with_payload ?? true, request.with_vector ?? false));
    }
    return { points, next_page_offset: next };
  }

  count(request: Schemas['CountRequest']): Schemas['CountResult'] {
    if (request.filter === undefined || request.filter === null) return { count: this.points.size };
    const match = compileFilter(request.filter as Filter);
    let count = 0;
    for (const point of this.points.values()) if (match(point)) count++;
    return { count };
  }

  retrieve(request: Schemas['PointRequest']): Schemas['Record'][] {
    const seen = new Set<string>();
    const out: Schemas['Record'][] = [];
    for (const raw of request.ids) {
      const key = idKey(parsePointId(raw));
      const point = this.points.get(key);
      if (!point || seen.has(key)) continue;
      seen.add(key);
      out.push(this.record(point, request.with_payload ?? true, request.with_vector ?? false));
    }
    return out;
  }

  query(request: Schemas['QueryRequest']): Schemas['QueryResponse'] {
    if (request.prefetch) throw unsupported('query prefetch');
    if (request.lookup_from) throw unsupported('query lookup_from');
    if (request.shard_key) throw unsupported('shard_key');
    const limit = request.limit ?? 10;
    const offset = request.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1) throw validation(`limit: value ${limit} invalid, must be 1 or larger`);
    const match = compileFilter(request.filter as Filter | null | undefined);
    const withPayload = request.with_payload ?? false;
    const withVector = request.with_vector ?? false;
    const using = request.using ?? '';
    let query: unknown = request.query;
    if (query !== null && typeof query === 'object' && !Array.isArray(query)) {
      if (!('nearest' in query)) throw unsupported(`the query ${Object.keys(query).join(', ')}`);
      if ((query as Schemas['NearestQuery']).mmr) throw unsupported('mmr');
      query = (query as Schemas['NearestQuery']).nearest;
    }
    if (query === undefined || query === null) {
      // No query: points in id order, score 0.
      const points = this.allPoints().filter(match).slice(offset, offset + limit);
      return { points: points.map((p) => ({ ...this.record(p, withPayload, withVector), version: p.version, score: 0 })) };
    }
    const spec = this.vectorSpecs.get(using);
    if (!spec) throw wrongInput(`Not existing vector name error: ${using}`);
    let vector: Float32Array;
    let exclude: string | undefined;
    if (Array.isArray(query)) {
      vector = this.toVector(using, query);
    } else if (typeof query === 'number' || typeof query === 'string') {
      const id = parsePointId(query);
      const found = this.points.get(idKey(id))?.vectors.get(using);
      if (!found) throw notFoundPoint(id);
      vector = found;
      exclude = idKey(id);
    } else {
      throw unsupported('this query input');
    }
    const higherIsBetter = spec.distance === 'Cosine' || spec.distance === 'Dot';
    const threshold = request.score_threshold ?? undefined;
    const scored: { point: StoredPoint; score: number }[] = [];
    for (const point of this.allPoints()) {
      const other = point.vectors.get(using);
      if (!other || !match(point) || idKey(point.id) === exclude) continue;
      const score = similarity(spec.distance, vector, other);
      if (threshold !== undefined && threshold !== null && (higherIsBetter ? score < threshold : score > threshold)) continue;
      scored.push({ point, score });
    }
    scored.sort((a, b) => (higherIsBetter ? b.score - a.score : a.score - b.score) || compareIds(a.point.id, b.point.id));
    return {
      points: scored.slice(offset, offset + limit).map(({ point, score }) => ({ ...this.record(point, withPayload, withVector), version: point.version, score })),
    };
  }

  /** A point as the API returns it; payload and vector are null unless asked for. */
  record(point: StoredPoint, withPayload: WithPayload, withVector: WithVector): Schemas['Record'] & { payload: Payload | null; vector: Schemas['VectorStructOutput'] | null } {
    return { id: point.id, payload: selectPayload(point.payload, withPayload), vector: this.selectVector(point, withVector) };
  }

  private selectVector(point: StoredPoint, withVector: WithVector): Schemas['VectorStructOutput'] | null {
    if (withVector === false || withVector === null || withVector === undefined) return null;
    const names = Array.isArray(withVector) ? new Set(withVector as string[]) : undefined;
    if (!this.named) {
      const v = point.vectors.get('');
      if (!v || (names && !names.has(''))) return null;
      return Array.from(v);
    }
    const out: Record<string, number[]> = {};
    for (const [name, v] of point.vectors) if (!names || names.has(name)) out[name] = Array.from(v);
    return out;
  }
}

function notFoundPoint(id: PointId) {
  return wrongInput(`No point with id ${JSON.stringify(id)} found`);
}

function selectPayload(payload: Payload, withPayload: WithPayload): Payload | null {
  if (withPayload === false || withPayload === null || withPayload === undefined) return null;
  if (withPayload === true) return payload;
  const include = Array.isArray(withPayload) ? (withPayload as string[]) : ((withPayload as Schemas['PayloadSelectorInclude']).include ?? undefined);
  if (include) {
    const out: Payload = {};
    for (const key of include) if (key in payload) out[key] = payload[key];
    return out;
  }
  const exclude = new Set((withPayload as Schemas['PayloadSelectorExclude']).exclude ?? []);
  return Object.fromEntries(Object.entries(payload).filter(([key]) => !exclude.has(key)));
}

function lowerBound(points: readonly StoredPoint[], id: PointId): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareIds((points[mid] as StoredPoint).id, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function normalise(vector: Float32Array): void {
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm);
  if (norm > Number.EPSILON) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm;
}

/** Qdrant's score: dot product for Cosine (on normalised vectors) and Dot; the distance for Euclid and Manhattan. */
export function similarity(distance: Distance, a: Float32Array, b: Float32Array): number {
  let sum = 0;
  switch (distance) {
    case 'Cosine':
    case 'Dot':
      for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
      return sum;
    case 'Euclid':
      for (let i = 0; i < a.length; i++) {
        const d = (a[i] as number) - (b[i] as number);
        sum += d * d;
      }
      return Math.sqrt(sum);
    case 'Manhattan':
      for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number));
      return sum;
  }
}
