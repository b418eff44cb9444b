// Point ids: unsigned integers or UUIDs. Qdrant orders integer ids before UUIDs, and UUIDs by
// their bytes (the same as their canonical lowercase text); it returns UUIDs hyphenated.
import { createHash } from 'node:crypto';
import { badRequest } from './errors.js';
import type { PointId } from './types.js';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** Validates and normalises an id from a request. */
export function parsePointId(value: unknown): PointId {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw badRequest(`Json deserialize error: invalid point id ${String(value)}: expected an unsigned integer or a UUID`);
  }
  if (typeof value === 'string') {
    const braced = value.startsWith('{') && value.endsWith('}') ? value.slice(1, -1) : value;
    const plain = braced.startsWith('urn:uuid:') ? braced.slice(9) : braced;
    if (!UUID.test(plain)) throw badRequest(`Unable to parse UUID: ${value}`);
    const hex = plain.replace(/-/g, '').toLowerCase();
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  throw badRequest(`Json deserialize error: invalid point id ${JSON.stringify(value)}: expected an unsigned integer or a UUID`);
}

/** A map key that keeps 1 and "1" apart. */
export const idKey = (id: PointId): string => (typeof id === 'number' ? `n${id}` : `u${id}`);

export function compareIds(a: PointId, b: PointId): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The shard a point lives in: a stable hash of its id over the collection's shard count. */
export function shardOf(id: PointId, shardNumber: number): number {
  if (shardNumber <= 1) return 0;
  if (typeof id === 'number') return id % shardNumber;
  return createHash('sha1').update(id).digest().readUInt32BE(0) % shardNumber;
}
