// Point-in-time targets as people type them: every form is read at validation time, to the
// microsecond, and anything else is COMMAND_INVALID naming pointInTime.time, never INTERNAL later.
import { describe, expect, it } from 'vitest';
import {
  RequestRestore, SchemaError, TidemarkError, decodeObject, parseMessage, parsePointInTimeText, postgresTimeOf, recoveryTargetOf,
} from '../src/index.js';

const SAME_MOMENT = '2026-12-04T02:23:56.980000Z';

describe('point-in-time times', () => {
  it.each([
    // PostgreSQL's timestamptz text, as SELECT now() prints it
    ['2026-12-04 02:23:56.98+00', SAME_MOMENT],
    ['2026-12-04 02:23:56.980000+00', SAME_MOMENT],
    ['2026-12-04 03:23:56.98+01', SAME_MOMENT],
    ['2026-12-03 21:23:56.98-05', SAME_MOMENT],
    ['2026-12-04 07:53:56.98+05:30', SAME_MOMENT],
    ['2026-12-04 02:23:56.98 UTC', SAME_MOMENT],
    ['2026-12-04 02:23:56.98 +00', SAME_MOMENT],
    // ISO 8601 / RFC 3339
    ['2026-12-04T02:23:56.98+00', SAME_MOMENT],
    ['2026-12-04T02:23:56.98Z', SAME_MOMENT],
    ['2026-12-04t02:23:56.98z', SAME_MOMENT],
    ['2026-12-04T02:23:56.98+0000', SAME_MOMENT],
    ['2026-12-04T02:23:56.98+00:00', SAME_MOMENT],
    ['2026-12-04T04:23:56.98+0200', SAME_MOMENT],
    ['2026-12-03T23:23:56.98-03:00', SAME_MOMENT],
    ['2026-12-04T02:23:56,98Z', SAME_MOMENT],
    ['20261204T022356.98Z', SAME_MOMENT],
    ['  2026-12-04T02:23:56.98Z  ', SAME_MOMENT],
    // no offset: UTC
    ['2026-12-04 02:23:56.98', SAME_MOMENT],
    ['2026-12-04T02:23:56.98', SAME_MOMENT],
    ['2026-12-04 02:23', '2026-12-04T02:23:00.000000Z'],
    ['2026-12-04', '2026-12-04T00:00:00.000000Z'],
    ['20261122T020000Z', '2026-11-22T02:00:00.000000Z'],
    // microseconds survive; longer fractions round like PostgreSQL
    ['2026-12-04 02:23:56.123456+00', '2026-12-04T02:23:56.123456Z'],
    ['2026-12-04 02:23:56.0000005+00', '2026-12-04T02:23:56.000001Z'],
    ['2026-12-04 23:59:59.9999996+00', '2026-12-05T00:00:00.000000Z'],
    // an offset that moves the date across a year and a leap day
    ['2027-01-01 00:30:00+01', '2026-12-31T23:30:00.000000Z'],
    ['2028-02-29 12:00:00-15:59', '2028-03-01T03:59:00.000000Z'],
    ['0050-06-01 00:00:00Z', '0050-06-01T00:00:00.000000Z'],
  ])('%j is %s', (typed, iso) => {
    expect(parsePointInTimeText(typed)?.iso).toBe(iso);
    expect(RequestRestore.parse({ pointInTime: { time: typed } }).pointInTime?.time).toBe(typed);
    expect(recoveryTargetOf({ time: typed })).toEqual({ type: 'time', time: iso, inclusive: true });
  });

  it.each([
    'yesterday', '', ' ', 'now', '2026-12-04 02:23:56.98+00 extra', '2026-13-01 00:00', '2026-02-29 00:00', '2026-04-31',
    '2026-12-04 24:00:00', '2026-12-04 02:60:00', '2026-12-04 02:23:61', '2026-12-04 02:23:56+16', '2026-12-04 02:23:56+01:60',
    '2026-12-04T', '2026-12-04 02', '26-12-04 02:23', '2026-12-04 02:23:56.', '0000-01-01', '9999-12-31T23:59:59-01',
    '1 Dec 2026 02:23:56 GMT', '1764815036', '2026-12-04T02:23:56.98+00\n--', '２０２６-12-04',
  ])('%j is refused at validation, naming pointInTime.time', (typed) => {
    expect(parsePointInTimeText(typed)).toBeUndefined();
    const refused = (() => {
      try {
        RequestRestore.parse({ pointInTime: { time: typed } });
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(SchemaError);
    expect((refused as SchemaError).issues).toEqual([{ path: 'pointInTime.time', message: expect.stringMatching(/is not a time: use ISO 8601 or PostgreSQL's form/) }]);
    expect(() => recoveryTargetOf({ time: typed })).toThrow(TidemarkError);
  });

  it('a command with an unparseable time is COMMAND_INVALID when decoded, not INTERNAL later', () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ pointInTime: { time: '2026-12-04 02:23:56.98+00:00:00' } }));
    expect(() => parseMessage(RequestRestore, decodeObject(bytes))).toThrow(expect.objectContaining({ code: 'COMMAND_INVALID', message: expect.stringContaining('pointInTime.time') }));
    for (const notAString of [5, true, [], {}]) {
      expect(() => RequestRestore.parse({ pointInTime: { time: notAString } })).toThrow(/pointInTime\.time: expected a string/);
    }
  });

  it('writes the form PostgreSQL reads, to the microsecond', () => {
    expect(postgresTimeOf('2026-12-04T02:23:56.123456Z')).toBe('2026-12-04 02:23:56.123456+00');
    const target = recoveryTargetOf({ time: '2026-12-04 03:23:56.98+01' });
    expect(target.type === 'time' && postgresTimeOf(target.time)).toBe('2026-12-04 02:23:56.980000+00');
    expect(() => postgresTimeOf('nonsense')).toThrow(RangeError);
  });
});
