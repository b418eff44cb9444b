// The schema kit validates every wire message and configuration file: each combinator must
// accept what it declares, and refuse the rest with a message naming the path of the bad value.
import { describe, expect, it } from 'vitest';
import {
  SchemaError, array, boolean, checkedString, isoDate, literal, nullable, number, object, oneOf, optional, record, string, unknownValue,
  withDefault, type Issue, type Schema,
} from '../src/index.js';

function issuesOf(schema: Schema<unknown>, input: unknown, path?: string): readonly Issue[] {
  try {
    schema.parse(input, path);
  } catch (error) {
    if (error instanceof SchemaError) return error.issues;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('accepts', () => {
  const rows: ReadonlyArray<readonly [string, Schema<unknown>, unknown, unknown]> = [
    ['string', string(), 'x', 'x'],
    ['string with bounds', string({ min: 1, max: 3, pattern: /^[a-z]+$/ }), 'abc', 'abc'],
    ['number', number({ min: 0, max: 10, integer: true }), 10, 10],
    ['number (fraction)', number(), 0.5, 0.5],
    ['boolean', boolean(), false, false],
    ['literal', literal(1), 1, 1],
    ['oneOf', oneOf(['a', 'b']), 'b', 'b'],
    ['isoDate', isoDate(), '2026-11-22T02:00:00Z', '2026-11-22T02:00:00Z'],
    ['checkedString', checkedString(() => undefined), 'x', 'x'],
    ['array', array(number(), { max: 2 }), [1, 2], [1, 2]],
    ['record', record(number()), { a: 1, b: 2 }, { a: 1, b: 2 }],
    ['unknownValue', unknownValue(), { any: ['thing'] }, { any: ['thing'] }],
    ['nullable (null)', nullable(string()), null, null],
    ['nullable (value)', nullable(string()), 'x', 'x'],
    ['optional (absent)', optional(string()), undefined, undefined],
    ['optional (null reads as absent)', optional(string()), null, undefined],
    ['withDefault (absent)', withDefault(number(), 7), undefined, 7],
    ['withDefault (null)', withDefault(number(), () => 8), null, 8],
    ['withDefault (given)', withDefault(number(), 7), 3, 3],
    ['object', object({ a: string(), b: optional(number()) }), { a: 'x' }, { a: 'x' }],
    ['object drops unknown keys when not strict', object({ a: string() }), { a: 'x', extra: 1 }, { a: 'x' }],
    ['object applies defaults', object({ a: withDefault(boolean(), true) }), {}, { a: true }],
  ];
  it.each(rows)('%s', (_name, schema, input, parsed) => {
    expect(schema.parse(input)).toEqual(parsed);
  });

  it('a default from a function is a fresh value each time', () => {
    const schema = withDefault(array(string()), () => []);
    const first = schema.parse(undefined);
    first.push('x');
    expect(schema.parse(undefined)).toEqual([]);
  });
});

describe('refuses, naming the path', () => {
  const rows: ReadonlyArray<readonly [string, Schema<unknown>, unknown, readonly Issue[]]> = [
    ['string: not a string', string(), 3, [{ path: 'at', message: 'expected a string, got number' }]],
    ['string: too short', string({ min: 2 }), 'a', [{ path: 'at', message: 'must be at least 2 characters' }]],
    ['string: too long', string({ max: 2 }), 'abc', [{ path: 'at', message: 'must be at most 2 characters' }]],
    ['string: pattern with hint', string({ pattern: /^a/, hint: 'starts with a' }), 'b', [{ path: 'at', message: 'starts with a' }]],
    ['string: pattern without hint', string({ pattern: /^a/ }), 'b', [{ path: 'at', message: 'must match /^a/' }]],
    ['number: a string', number(), '1', [{ path: 'at', message: 'expected a number, got string' }]],
    ['number: NaN', number(), Number.NaN, [{ path: 'at', message: 'expected a number, got number' }]],
    ['number: Infinity', number(), Number.POSITIVE_INFINITY, [{ path: 'at', message: 'expected a number, got number' }]],
    ['number: fraction', number({ integer: true }), 1.5, [{ path: 'at', message: 'must be a whole number' }]],
    ['number: below', number({ min: 1 }), 0, [{ path: 'at', message: 'must be >= 1' }]],
    ['number: above', number({ max: 1 }), 2, [{ path: 'at', message: 'must be <= 1' }]],
    ['boolean: a string', boolean(), 'true', [{ path: 'at', message: 'expected true or false, got string' }]],
    ['boolean: null', boolean(), null, [{ path: 'at', message: 'expected true or false, got null' }]],
    ['literal', literal(1), 2, [{ path: 'at', message: 'expected 1, got 2' }]],
    ['oneOf', oneOf(['a', 'b']), 'c', [{ path: 'at', message: 'expected one of a, b, got "c"' }]],
    ['oneOf: not a string', oneOf(['a']), 1, [{ path: 'at', message: 'expected one of a, got 1' }]],
    ['isoDate', isoDate(), 'yesterday', [{ path: 'at', message: 'expected an ISO-8601 time, got "yesterday"' }]],
    ['checkedString: not a string', checkedString(() => undefined), [], [{ path: 'at', message: 'expected a string, got an array' }]],
    ['checkedString: its problem', checkedString((v) => `"${v}" is wrong`), 'x', [{ path: 'at', message: '"x" is wrong' }]],
    ['array: not an array', array(string()), {}, [{ path: 'at', message: 'expected an array, got object' }]],
    ['array: too many', array(string(), { max: 1 }), ['a', 'b'], [{ path: 'at', message: 'must have at most 1 items' }]],
    ['array: every bad item', array(string()), ['a', 1, null], [
      { path: 'at[1]', message: 'expected a string, got number' },
      { path: 'at[2]', message: 'expected a string, got null' },
    ]],
    ['record: an array', record(number()), [1], [{ path: 'at', message: 'expected an object, got an array' }]],
    ['record: a bad value', record(number()), { a: 'x' }, [{ path: 'at.a', message: 'expected a number, got string' }]],
    ['nullable: a bad value', nullable(number()), 'x', [{ path: 'at', message: 'expected a number, got string' }]],
    ['optional: a bad value', optional(number()), 'x', [{ path: 'at', message: 'expected a number, got string' }]],
    ['withDefault: a bad value', withDefault(number(), 1), 'x', [{ path: 'at', message: 'expected a number, got string' }]],
    ['object: not an object', object({}), 'x', [{ path: 'at', message: 'expected an object, got string' }]],
    ['object: null', object({}), null, [{ path: 'at', message: 'expected an object, got null' }]],
    ['object: a missing field', object({ a: string() }), {}, [{ path: 'at.a', message: 'is required' }]],
    ['object: strict refuses unknown fields', object({ a: string() }, { strict: true }), { a: 'x', b: 1 }, [{ path: 'at.b', message: 'is not a known field' }]],
    ['object: strict refuses names from Object.prototype', object({ a: string() }, { strict: true }), { a: 'x', toString: 1, constructor: 2 }, [
      { path: 'at.toString', message: 'is not a known field' },
      { path: 'at.constructor', message: 'is not a known field' },
    ]],
    ['object: every problem, nested', object({ a: object({ b: array(number()) }), c: boolean() }), { a: { b: [1, 'x'] }, c: 1 }, [
      { path: 'at.a.b[1]', message: 'expected a number, got string' },
      { path: 'at.c', message: 'expected true or false, got number' },
    ]],
  ];
  it.each(rows)('%s', (_name, schema, input, issues) => {
    expect(issuesOf(schema, input, 'at')).toEqual(issues);
  });

  it('at the top level the path is the field itself', () => {
    expect(issuesOf(object({ targets: array(object({ schedule: string() })) }), { targets: [{ schedule: 5 }] })).toEqual([
      { path: 'targets[0].schedule', message: 'expected a string, got number' },
    ]);
  });

  it('the error message joins every issue with its path', () => {
    const schema = object({ a: string(), b: number() });
    expect(() => schema.parse({ b: 'x' })).toThrow(new SchemaError([
      { path: 'a', message: 'is required' },
      { path: 'b', message: 'expected a number, got string' },
    ]));
    expect(() => schema.parse({ b: 'x' })).toThrow('a: is required; b: expected a number, got string');
    expect(() => string().parse(1)).toThrow(/^expected a string, got number$/);
  });

  it('an error that is not a schema problem passes through untouched', () => {
    const boom = new RangeError('boom');
    const schema = object({ a: checkedString(() => { throw boom; }) });
    expect(() => schema.parse({ a: 'x' })).toThrow(boom);
  });
});
