// Canonical forms shared by facts, the export format and the verifier: id order, vector bytes
// and payload JSON, so that hashes taken at backup time match those taken after a restore.
import { createHash, type Hash } from 'node:crypto';
import type { PointId, PointVectors, QdrantPoint, VectorValue } from './port.js';

/**
 * Qdrant's scroll order: integer ids before UUIDs, integers by value, UUIDs by their bytes (the
 * same as their lowercase hex form).
 */
export function compareIds(a: PointId, b: PointId): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Vectors are stored by Qdrant as float32: hash their little-endian float32 bytes. */
export function float32Bytes(values: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

export const isSparse = (v: unknown): v is { indices: number[]; values: number[] } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && 'indices' in v && 'values' in v;

/** The unnamed vector is a plain array; anything else is a map of named vectors. */
export const isNamed = (v: PointVectors): v is Record<string, VectorValue> => !Array.isArray(v);

function hashVector(hash: Hash, v: VectorValue): void {
  if (isSparse(v)) {
    hash.update('s');
    hash.update(Buffer.from(Uint32Array.from(v.indices).buffer));
    hash.update(float32Bytes(v.values));
  } else if (Array.isArray(v[0])) {
    hash.update(`m${v.length}`);
    for (const row of v as number[][]) hash.update(float32Bytes(row));
  } else {
    hash.update('d');
    hash.update(float32Bytes(v as number[]));
  }
}

export function updateVectorsHash(hash: Hash, vectors: PointVectors | undefined): void {
  if (vectors === undefined) {
    hash.update('-');
    return;
  }
  if (!isNamed(vectors)) return hashVector(hash, vectors);
  for (const name of Object.keys(vectors).sort()) {
    hash.update(`\0${name}\0`);
    hashVector(hash, vectors[name] as VectorValue);
  }
}

/** JSON with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

export const idKey = (id: PointId): string => (typeof id === 'number' ? `n${id}` : `u${id.toLowerCase()}`);

export interface SampleHashes {
  ids: PointId[];
  vectorsSha256: string;
  payloadSha256: string;
}

/** Hashes of a sample of points (in the given order): vectors and payloads apart. */
export function hashSample(points: readonly QdrantPoint[]): SampleHashes {
  const vectors = createHash('sha256');
  const payload = createHash('sha256');
  for (const p of points) {
    vectors.update(`${idKey(p.id)}\n`);
    updateVectorsHash(vectors, p.vector);
    payload.update(`${idKey(p.id)}\n${canonicalJson(p.payload ?? {})}\n`);
  }
  return { ids: points.map((p) => p.id), vectorsSha256: vectors.digest('hex'), payloadSha256: payload.digest('hex') };
}
