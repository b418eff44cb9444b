// The manifest facts of one collection: Qdrant's version, the collection config (vectors,
// distance, sharding, replication), the exact points count, a fingerprint of a deterministic
// sample (the first N points in id order) and a few recorded nearest-neighbour queries that the
// verifier replays on the restored copy.
import { QdrantSourceFacts, SchemaError, TidemarkError, type Manifest, type QdrantProbe } from '@tidemark/contracts';
import { hashSample, isNamed, isSparse } from './canonical.js';
import type { CollectionInfo, QdrantPoint, QdrantPort, VectorValue } from './port.js';

export interface FactsOptions {
  /** Points in the sample fingerprint (default 64). */
  readonly sampleSize?: number;
  /** Recorded queries (default 3), taken from sampled points spread across the sample. */
  readonly probes?: number;
  /** Neighbours recorded per query (default 10). */
  readonly k?: number;
  /** Whether payloads are part of the artifact (exports may leave them out). */
  readonly includePayload?: boolean;
}

export type VectorFacts = QdrantSourceFacts['vectors'];

const asRecord = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export function paramsOf(info: CollectionInfo): Record<string, unknown> {
  return asRecord(info.config.params);
}

/** Dense vectors (unnamed when the config has `size` at the top), multivectors, then sparse ones. */
export function vectorFacts(info: CollectionInfo): VectorFacts {
  const params = paramsOf(info);
  const vectors = asRecord(params.vectors);
  const dense = (name: string, v: Record<string, unknown>) => ({
    name,
    kind: v.multivector_config ? ('multi' as const) : ('dense' as const),
    ...(typeof v.size === 'number' ? { size: v.size } : {}),
    ...(typeof v.distance === 'string' ? { distance: v.distance } : {}),
  });
  const out: VectorFacts = 'size' in vectors ? [dense('', vectors)] : Object.entries(vectors).map(([n, v]) => dense(n, asRecord(v)));
  for (const name of Object.keys(asRecord(params.sparse_vectors))) out.push({ name, kind: 'sparse' });
  return out;
}

export function shardingFacts(info: CollectionInfo): QdrantSourceFacts['sharding'] {
  const params = paramsOf(info);
  const int = (v: unknown, d: number) => (typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : d);
  return {
    shardNumber: int(params.shard_number, 1),
    replicationFactor: int(params.replication_factor, 1),
    writeConsistencyFactor: int(params.write_consistency_factor, 1),
    method: typeof params.sharding_method === 'string' ? params.sharding_method : 'auto',
  };
}

/** The first `size` points in id order, with vectors and (optionally) payloads. */
export async function samplePoints(port: QdrantPort, collection: string, size: number, withPayload: boolean): Promise<QdrantPoint[]> {
  const points: QdrantPoint[] = [];
  let offset: QdrantPoint['id'] | null = null;
  while (points.length < size) {
    const page = await port.scroll(collection, { limit: size - points.length, offset, withVector: true, withPayload });
    points.push(...page.points);
    if (page.nextOffset === null || page.points.length === 0) break;
    offset = page.nextOffset;
  }
  return points.slice(0, size);
}

/** The vector a probe queries with: the unnamed one, or the first dense named one (by name). */
export function probeVector(point: QdrantPoint, using: string | undefined): VectorValue | undefined {
  const v = point.vector;
  if (v === undefined) return undefined;
  if (!isNamed(v)) return using === undefined || using === '' ? v : undefined;
  return using === undefined ? undefined : v[using];
}

export function probeTarget(vectors: VectorFacts): string | undefined | null {
  const first = vectors.find((v) => v.kind === 'dense') ?? vectors.find((v) => v.kind === 'multi');
  if (first === undefined) return null;
  return first.name === '' ? undefined : first.name;
}

/** Records `count` queries: the vectors of sampled points spread across the sample. */
export async function recordProbes(port: QdrantPort, collection: string, sample: readonly QdrantPoint[], vectors: VectorFacts, count: number, k: number): Promise<QdrantProbe[]> {
  const using = probeTarget(vectors);
  if (using === null || sample.length === 0 || count <= 0) return [];
  const probes: QdrantProbe[] = [];
  const picks = new Set<number>();
  for (let i = 0; i < Math.min(count, sample.length); i++) picks.add(Math.floor((i * sample.length) / Math.min(count, sample.length)));
  for (const index of picks) {
    const point = sample[index] as QdrantPoint;
    const vector = probeVector(point, using);
    if (vector === undefined || isSparse(vector)) continue;
    const topIds = await port.query(collection, { vector, ...(using === undefined ? {} : { using }), limit: k });
    probes.push({ queryId: point.id, ...(using === undefined ? {} : { using }), k, topIds });
  }
  return probes;
}

export const SINGLE_NODE_COVERAGE = 'single node: the collection snapshot holds every local shard and replica';
export const EXPORT_COVERAGE = 'logical export: every point of every shard, read through the query API';

/**
 * Collects the facts of one collection. `coverage` says what the artifact holds; snapshots refuse
 * distributed clusters before calling this (see snapshot.ts).
 */
export async function collectFacts(port: QdrantPort, collection: string, coverage: string, options: FactsOptions = {}): Promise<QdrantSourceFacts> {
  const includePayload = options.includePayload ?? true;
  const [qdrantVersion, info] = await Promise.all([port.version(), port.getCollection(collection)]);
  const pointsCount = await port.count(collection);
  const sample = await samplePoints(port, collection, options.sampleSize ?? 64, includePayload);
  const hashes = hashSample(sample);
  const vectors = vectorFacts(info);
  const probes = await recordProbes(port, collection, sample, vectors, options.probes ?? 3, options.k ?? 10);
  return {
    qdrantVersion,
    collection,
    config: info.config,
    payloadSchema: info.payloadSchema,
    vectors,
    sharding: shardingFacts(info),
    coverage,
    pointsCount,
    sample: { size: sample.length, ids: hashes.ids, vectorsSha256: hashes.vectorsSha256, ...(includePayload ? { payloadSha256: hashes.payloadSha256 } : {}) },
    probes,
    includePayload,
  };
}

export interface FingerprintCheck {
  name: string;
  ok: boolean;
  expected?: unknown;
  actual?: unknown;
}

/**
 * Compares a restored collection with recorded facts: count, sample fingerprint and probes
 * (top-k ids compared as sets: points at equal distance may come back in either order).
 */
export async function compareWithFacts(port: QdrantPort, collection: string, facts: QdrantSourceFacts): Promise<FingerprintCheck[]> {
  const checks: FingerprintCheck[] = [];
  const count = await port.count(collection);
  checks.push({ name: 'points count', ok: count === facts.pointsCount, expected: facts.pointsCount, actual: count });
  const withPayload = facts.sample.payloadSha256 !== undefined;
  const sample = await samplePoints(port, collection, facts.sample.size, withPayload);
  const hashes = hashSample(sample);
  checks.push({ name: 'sample ids', ok: JSON.stringify(hashes.ids) === JSON.stringify(facts.sample.ids), expected: facts.sample.ids.length, actual: hashes.ids.length });
  checks.push({ name: 'sample vectors sha256', ok: hashes.vectorsSha256 === facts.sample.vectorsSha256, expected: facts.sample.vectorsSha256, actual: hashes.vectorsSha256 });
  if (withPayload) checks.push({ name: 'sample payload sha256', ok: hashes.payloadSha256 === facts.sample.payloadSha256, expected: facts.sample.payloadSha256, actual: hashes.payloadSha256 });
  for (const probe of facts.probes) {
    const query = sample.find((p) => JSON.stringify(p.id) === JSON.stringify(probe.queryId));
    const vector = query && probeVector(query, probe.using);
    if (vector === undefined) {
      checks.push({ name: `probe ${String(probe.queryId)}`, ok: false, expected: probe.topIds, actual: 'query point missing' });
      continue;
    }
    const topIds = await port.query(collection, { vector, ...(probe.using === undefined ? {} : { using: probe.using }), limit: probe.k });
    const same = topIds.length === probe.topIds.length && topIds.every((id) => probe.topIds.some((x) => JSON.stringify(x) === JSON.stringify(id)));
    checks.push({ name: `probe ${String(probe.queryId)}`, ok: same, expected: probe.topIds, actual: topIds });
  }
  return checks;
}

/** A manifest's `source` read as QdrantSourceFacts; anything else is INTEGRITY_FORMAT: it was not written by the qdrant agent. */
export function qdrantFactsOf(manifest: Pick<Manifest, 'id' | 'source'>): QdrantSourceFacts {
  try {
    return QdrantSourceFacts.parse(manifest.source, 'source');
  } catch (error) {
    if (error instanceof SchemaError) {
      throw new TidemarkError('INTEGRITY_FORMAT', `the manifest of artifact ${manifest.id} has no valid qdrant facts (${error.message}); it was not written by the qdrant agent, and can be neither restored nor verified`, { cause: error });
    }
    throw error;
  }
}
