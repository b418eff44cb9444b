// Wire encoding. Services speak msgpack to each other by default; people and scripts may publish
// JSON (for example `nats pub backup.requested.pg.main '{"reason":"before migration"}'`), and
// alerts always go out as JSON, because subscribing to `alert.>` is how people read them. The
// decoder honours a content-type header and otherwise sniffs, so every consumer reads both.
import { Packr } from 'msgpackr';
import { TidemarkError } from './errors.js';
import { isAlertSubject } from './subjects.js';

export const CONTENT_TYPE_HEADER = 'Content-Type';
export const MSGPACK = 'application/msgpack';
export const JSON_TYPE = 'application/json';
/** Commands larger than this are rejected before decoding; the stream enforces the same limit. */
export const MAX_COMMAND_BYTES = 64 * 1024;

// Plain maps (no msgpackr records) so that any msgpack implementation can read our messages.
// 64-bit integers decode as numbers: a message field is never a BigInt, and a BigInt from a
// sender's msgpack would otherwise reach validation (and JSON.stringify) as a type no schema knows.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

export function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** Minimal view of NATS headers, so contracts does not depend on the NATS client. */
export interface HeaderReader {
  get(name: string): string;
}

function firstSignificantByte(data: Uint8Array): number | undefined {
  for (const byte of data) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return byte;
  }
  return undefined;
}

export type PayloadEncoding = 'json' | 'msgpack';

/**
 * Which encoding a payload uses: the content-type header when present, else the first byte.
 * A msgpack map begins with 0x80-0x8f, 0xde or 0xdf, and every msgpack value that is not a bare
 * small integer begins with a byte of 0x80 or more; JSON text begins with printable ASCII. So a
 * payload starting below 0x80 is JSON (a bare msgpack integer is never a message). An empty
 * payload counts as JSON: a person typed it.
 */
export function payloadEncoding(data: Uint8Array, headers?: HeaderReader): PayloadEncoding {
  const declared = headers?.get(CONTENT_TYPE_HEADER)?.toLowerCase() ?? '';
  if (declared.includes('json')) return 'json';
  if (declared.includes('msgpack')) return 'msgpack';
  const first = firstSignificantByte(data);
  return first === undefined || first < 0x80 ? 'json' : 'msgpack';
}

/** How a deployment publishes its events (`events.encoding` in tidemark.yaml). */
export const EVENT_ENCODINGS = ['msgpack', 'json'] as const;
export type EventEncoding = (typeof EVENT_ENCODINGS)[number];

/**
 * The encoding of a message published on `subject`: JSON for alerts whatever the deployment
 * says (a plain `nats sub 'alert.>'` must be readable), else the deployment's event encoding.
 */
export function publishEncodingFor(subject: string, eventEncoding: EventEncoding = 'msgpack'): PayloadEncoding {
  return isAlertSubject(subject) ? 'json' : eventEncoding;
}

/** A payload with the content type that names its encoding. */
export interface EncodedPayload {
  readonly data: Uint8Array;
  readonly contentType: string;
}

export function encodeAs(value: unknown, encoding: PayloadEncoding): EncodedPayload {
  return encoding === 'json' ? { data: encodeJson(value), contentType: JSON_TYPE } : { data: encode(value), contentType: MSGPACK };
}

/** `subject`'s message encoded the way publishEncodingFor decides. */
export const encodeForSubject = (subject: string, value: unknown, eventEncoding?: EventEncoding): EncodedPayload =>
  encodeAs(value, publishEncodingFor(subject, eventEncoding));

const utf8 = new TextDecoder('utf-8', { fatal: true });

interface Decoded {
  readonly value: unknown;
  readonly encoding: PayloadEncoding;
}

const detailOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause));

/** `declared`: the sender's header said JSON, so binary is broken JSON rather than unknown bytes. */
function decodeJson(data: Uint8Array, declared: boolean): Decoded {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch (cause) {
    const message = declared
      ? 'payload is not valid JSON: it is not UTF-8 text (the Content-Type header says JSON)'
      : 'payload is neither JSON (it is not UTF-8 text) nor msgpack (it does not start like a msgpack value)';
    throw new TidemarkError('COMMAND_UNDECODABLE', message, { cause });
  }
  try {
    return { value: JSON.parse(text), encoding: 'json' };
  } catch (cause) {
    throw new TidemarkError('COMMAND_UNDECODABLE', `payload is not valid JSON: ${detailOf(cause)}`, { cause });
  }
}

function decodeMsgpack(data: Uint8Array): Decoded {
  try {
    return { value: packr.unpack(data), encoding: 'msgpack' };
  } catch (cause) {
    throw new TidemarkError('COMMAND_UNDECODABLE', `payload is not valid msgpack: ${detailOf(cause)}`, { cause });
  }
}

function decodeWithEncoding(data: Uint8Array, headers?: HeaderReader): Decoded {
  if (firstSignificantByte(data) === undefined) return { value: {}, encoding: 'json' };
  if (payloadEncoding(data, headers) === 'msgpack') return decodeMsgpack(data);
  return decodeJson(data, headers?.get(CONTENT_TYPE_HEADER)?.toLowerCase().includes('json') ?? false);
}

/**
 * Decodes a payload. An empty payload decodes to `{}` so that `nats pub <subject> ""` requests a
 * backup with defaults. Throws COMMAND_UNDECODABLE with a reason that can be shown to the sender.
 */
export function decode(data: Uint8Array, headers?: HeaderReader): unknown {
  return decodeWithEncoding(data, headers).value;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
};

/** What a decoded non-object is, in the terms of the encoding the sender used. */
export function describeDecodedValue(value: unknown, encoding: PayloadEncoding): string {
  const json = encoding === 'json';
  const name = json ? 'JSON' : 'msgpack';
  if (value === null || value === undefined) return json ? 'JSON null' : 'msgpack nil';
  if (typeof value === 'boolean') return `${name} ${String(value)}`;
  if (typeof value === 'number' || typeof value === 'bigint') return `a ${name} number (${String(value)})`;
  if (typeof value === 'string') return `a ${name} string`;
  if (Array.isArray(value)) return `a ${name} array`;
  if (value instanceof Uint8Array) return 'msgpack binary data';
  if (value instanceof Date) return 'a msgpack timestamp';
  return `a msgpack extension value`;
}

/**
 * Decodes a payload that must be an object (every command, request and event is one). Anything
 * else is COMMAND_INVALID in the sender's terms: "a command must be a JSON or msgpack object;
 * got JSON null".
 */
export function decodeObject(data: Uint8Array, headers?: HeaderReader, what: 'command' | 'event' | 'request' = 'command'): Record<string, unknown> {
  const { value, encoding } = decodeWithEncoding(data, headers);
  if (isPlainObject(value)) return value;
  const article = what === 'event' ? 'an' : 'a';
  throw new TidemarkError('COMMAND_INVALID', `${article} ${what} must be a JSON or msgpack object; got ${describeDecodedValue(value, encoding)}`);
}
