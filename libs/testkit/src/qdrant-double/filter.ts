// Qdrant's payload filter over one point: must / should / must_not / min_should, nested filters,
// and the conditions match (value, any, except, text), range (numbers or RFC 3339 datetimes),
// is_empty, is_null, values_count, has_id and has_vector. Keys are dotted paths; `a[]` flattens an
// array, and a condition on an array holds when any of its values matches (as in Qdrant).
import { unsupported, badRequest } from './errors.js';
import { idKey, parsePointId } from './ids.js';
import type { Condition, Filter, Payload, PointId, Schemas } from './types.js';

export interface FilterTarget {
  readonly id: PointId;
  readonly payload: Payload;
  readonly vectorNames: ReadonlySet<string>;
}

const asList = <T>(value: T | T[] | Record<string, unknown> | null | undefined): T[] =>
  value === undefined || value === null ? [] : Array.isArray(value) ? value : [value as T];

/** Compiles once so that has_id lists become sets; the result is applied to each point. */
export function compileFilter(filter: Filter | Record<string, unknown> | null | undefined): (point: FilterTarget) => boolean {
  if (filter === undefined || filter === null) return () => true;
  return compile(filter as Filter);
}

function compile(filter: Filter): (point: FilterTarget) => boolean {
  const must = asList<Condition>(filter.must).map(compileCondition);
  const should = asList<Condition>(filter.should).map(compileCondition);
  const mustNot = asList<Condition>(filter.must_not).map(compileCondition);
  const minShould = filter.min_should as Schemas['MinShould'] | null | undefined;
  const min = minShould ? { conditions: minShould.conditions.map(compileCondition), count: minShould.min_count } : undefined;
  return (point) =>
    must.every((c) => c(point)) &&
    (should.length === 0 || should.some((c) => c(point))) &&
    !mustNot.some((c) => c(point)) &&
    (min === undefined || min.conditions.filter((c) => c(point)).length >= min.count);
}

function compileCondition(condition: Condition): (point: FilterTarget) => boolean {
  const c = condition as Record<string, unknown>;
  if ('has_id' in c) {
    const ids = new Set((c['has_id'] as unknown[]).map((id) => idKey(parsePointId(id))));
    return (point) => ids.has(idKey(point.id));
  }
  if ('has_vector' in c) {
    const name = c['has_vector'] as string;
    return (point) => point.vectorNames.has(name);
  }
  if ('is_empty' in c && typeof c['is_empty'] === 'object' && c['is_empty'] !== null) {
    const key = (c['is_empty'] as Schemas['PayloadField']).key;
    return (point) => values(point.payload, key).filter((v) => v !== null).length === 0;
  }
  if ('is_null' in c && typeof c['is_null'] === 'object' && c['is_null'] !== null) {
    const key = (c['is_null'] as Schemas['PayloadField']).key;
    return (point) => lookup(point.payload, key).some(isNullish);
  }
  if ('nested' in c) throw unsupported('the nested filter condition');
  if ('key' in c) return compileField(c as Schemas['FieldCondition']);
  if ('must' in c || 'should' in c || 'must_not' in c || 'min_should' in c) return compile(c as Filter);
  throw badRequest(`Json deserialize error: unknown filter condition ${JSON.stringify(condition).slice(0, 200)}`);
}

function compileField(condition: Schemas['FieldCondition']): (point: FilterTarget) => boolean {
  const { key } = condition;
  const tests: ((value: unknown) => boolean)[] = [];
  if (condition.match) tests.push(compileMatch(condition.match as Schemas['Match']));
  if (condition.range) tests.push(compileRange(condition.range as Schemas['Range'] | Schemas['DatetimeRange']));
  if (condition.geo_bounding_box || condition.geo_radius || condition.geo_polygon) throw unsupported('a geo filter condition');
  const count = condition.values_count as Schemas['ValuesCount'] | null | undefined;
  const checks: ((point: FilterTarget) => boolean)[] = [];
  if (tests.length > 0) checks.push((point) => tests.every((test) => values(point.payload, key).some(test)));
  if (count) {
    checks.push((point) => {
      const n = values(point.payload, key).length;
      return (count.lt == null || n < count.lt) && (count.lte == null || n <= count.lte) && (count.gt == null || n > count.gt) && (count.gte == null || n >= count.gte);
    });
  }
  if (condition.is_empty === true) checks.push((point) => values(point.payload, key).length === 0);
  if (condition.is_empty === false) checks.push((point) => values(point.payload, key).length > 0);
  if (condition.is_null === true) checks.push((point) => lookup(point.payload, key).some(isNullish));
  if (condition.is_null === false) checks.push((point) => !lookup(point.payload, key).some(isNullish));
  if (checks.length === 0) throw badRequest(`Json deserialize error: the field condition on \`${key}\` has no condition`);
  return (point) => checks.every((check) => check(point));
}

function compileMatch(match: Schemas['Match']): (value: unknown) => boolean {
  const m = match as Record<string, unknown>;
  if ('value' in m) return (value) => value === m['value'];
  if ('any' in m) {
    const any = new Set(m['any'] as unknown[]);
    return (value) => any.has(value);
  }
  if ('except' in m) {
    const except = new Set(m['except'] as unknown[]);
    return (value) => !except.has(value);
  }
  if ('text' in m) {
    const text = m['text'] as string;
    return (value) => typeof value === 'string' && value.includes(text);
  }
  throw unsupported(`the match ${Object.keys(m).join(', ')}`);
}

function compileRange(range: Schemas['Range'] | Schemas['DatetimeRange']): (value: unknown) => boolean {
  const bounds = [range.lt, range.lte, range.gt, range.gte];
  const datetime = bounds.some((b) => typeof b === 'string');
  const toNumber = (v: unknown): number | undefined => {
    if (datetime) {
      if (typeof v !== 'string') return undefined;
      const t = Date.parse(v.includes('T') || v.includes(' ') ? v.replace(' ', 'T') : v);
      return Number.isNaN(t) ? undefined : t;
    }
    return typeof v === 'number' ? v : undefined;
  };
  const bound = (b: unknown): number | undefined => {
    if (b === undefined || b === null) return undefined;
    const n = toNumber(b);
    if (n === undefined) throw badRequest(`Json deserialize error: invalid range bound ${JSON.stringify(b)}`);
    return n;
  };
  const lt = bound(range.lt);
  const lte = bound(range.lte);
  const gt = bound(range.gt);
  const gte = bound(range.gte);
  return (value) => {
    const n = toNumber(value);
    if (n === undefined) return false;
    return (lt === undefined || n < lt) && (lte === undefined || n <= lte) && (gt === undefined || n > gt) && (gte === undefined || n >= gte);
  };
}

/** The raw values at a key path (arrays kept as arrays; missing keys give nothing). */
function lookup(payload: unknown, key: string): unknown[] {
  let current: unknown[] = [payload];
  for (const rawPart of key.split('.')) {
    const flatten = rawPart.endsWith('[]');
    const part = flatten ? rawPart.slice(0, -2) : rawPart;
    const next: unknown[] = [];
    for (const value of current) {
      const items = Array.isArray(value) ? value : [value];
      for (const item of items) {
        if (item === null || typeof item !== 'object' || Array.isArray(item)) continue;
        if (!(part in item)) continue;
        const found = (item as Record<string, unknown>)[part];
        if (flatten && Array.isArray(found)) next.push(...(found as unknown[]));
        else next.push(found);
      }
    }
    current = next;
  }
  return current;
}

/** The values a condition sees: arrays are flattened (any element may match). */
function values(payload: unknown, key: string): unknown[] {
  return lookup(payload, key).flatMap((v) => (Array.isArray(v) ? (v as unknown[]) : [v]));
}

/** A null value, or an array of only nulls. */
const isNullish = (v: unknown): boolean => v === null || (Array.isArray(v) && v.length > 0 && v.every((x) => x === null));
