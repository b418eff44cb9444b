// Point-in-time recovery targets as people type them: ISO 8601 / RFC 3339 and PostgreSQL's own
// timestamptz text (what `SELECT now()` prints), normalised to one UTC form that keeps
// PostgreSQL's microsecond precision (JavaScript's Date would cut it to milliseconds, and a target
// 0.4 ms after a commit would then land before it).
//
// Accepted: a date (YYYY-MM-DD or YYYYMMDD), optionally followed by `T`, `t` or spaces and a time
// (HH:MM, HH:MM:SS, or HHMM[SS] in the basic format), a fraction of a second of any length (rounded
// to microseconds, as PostgreSQL does), and an offset: `Z`, `UTC`, `GMT`, `+HH`, `+HHMM`, `+HH:MM`
// or negative ones, optionally after a space. No offset means UTC, wherever the command is typed.

const EXTENDED = /^(\d{4})-(\d\d)-(\d\d)(?:(?:[Tt]| +)(\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?(?: ?(Z|z|UTC|GMT|[+-]\d\d(?::?\d\d)?))?$/;
const BASIC = /^(\d{4})(\d\d)(\d\d)(?:[Tt](\d\d)(\d\d)(?:(\d\d)(?:[.,](\d+))?)?)?(?:(Z|z|[+-]\d\d(?:\d\d)?))?$/;

/** Years 0001 to 9999, the range four digits write (and ISO 8601 without its expanded form). */
const FIRST_MICROS = BigInt(Date.parse('0001-01-01T00:00:00Z')) * 1000n;
const LAST_MICROS = BigInt(Date.parse('9999-12-31T23:59:59Z')) * 1000n + 999_999n;

/** The largest offset PostgreSQL accepts (±15:59). */
const MAX_OFFSET_MINUTES = 15 * 60 + 59;

export interface ParsedPointInTime {
  /** UTC, ISO 8601, with exactly six fraction digits: "2026-12-04T02:23:56.980000Z". */
  readonly iso: string;
  /** Microseconds since 1970-01-01T00:00:00Z. */
  readonly epochMicros: bigint;
}

/** Why `text` is not a time, or undefined when it is one. */
export function pointInTimeProblem(text: string): string | undefined {
  return parsePointInTimeText(text) === undefined
    ? `${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)} is not a time: use ISO 8601 or PostgreSQL's form, e.g. "2026-12-04 02:23:56.98+00" or "2026-12-04T02:23:56Z" (no offset means UTC)`
    : undefined;
}

/** The moment `text` names, or undefined when it names none (bad syntax, 2026-02-30, 25:00, an offset beyond ±15:59). */
export function parsePointInTimeText(text: string): ParsedPointInTime | undefined {
  const value = text.trim();
  const match = EXTENDED.exec(value) ?? BASIC.exec(value);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((part) => Number(part ?? 0)) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  const offsetMinutes = offsetOf(match[8]);
  if (offsetMinutes === undefined) return undefined;
  const fraction = match[7] ?? '';
  // Rounded to microseconds, half up: PostgreSQL's own rounding of longer fractions.
  const padded = `${fraction}0000000`;
  const micros = BigInt(padded.slice(0, 6)) + (Number(padded[6]) >= 5 ? 1n : 0n);
  // setUTCFullYear, not Date.UTC: that one reads the years 0-99 as 1900-1999.
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, 0);
  const wholeSeconds = BigInt(local.getTime() / 1000) - BigInt(offsetMinutes * 60);
  const epochMicros = wholeSeconds * 1_000_000n + micros;
  if (epochMicros < FIRST_MICROS || epochMicros > LAST_MICROS) return undefined;
  return { iso: isoOfMicros(epochMicros), epochMicros };
}

/** "2026-12-04T02:23:56.980000Z" for a count of microseconds since the epoch. */
export function isoOfMicros(epochMicros: bigint): string {
  const seconds = floorDiv(epochMicros, 1_000_000n);
  const micros = epochMicros - seconds * 1_000_000n;
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}.${micros.toString().padStart(6, '0')}Z`;
}

/** A normalised point in time in the form PostgreSQL reads and prints: "2026-12-04 02:23:56.980000+00". */
export function postgresTimeOf(iso: string): string {
  const parsed = parsePointInTimeText(iso);
  if (parsed === undefined) throw new RangeError(`${JSON.stringify(iso)} is not a point in time`);
  return `${parsed.iso.slice(0, 10)} ${parsed.iso.slice(11, 26)}+00`;
}

function offsetOf(zone: string | undefined): number | undefined {
  if (zone === undefined || /^(Z|UTC|GMT)$/i.test(zone)) return 0;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
  if (minutes > 59) return undefined;
  const total = hours * 60 + minutes;
  if (total > MAX_OFFSET_MINUTES) return undefined;
  return zone.startsWith('-') ? -total : total;
}

function daysIn(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
};
