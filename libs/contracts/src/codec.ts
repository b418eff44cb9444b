// Wire encoding. Services speak msgpack; people and scripts may publish JSON (for example
// `nats pub backup.requested.pg.main '{"reason":"before migration"}'`). The decoder honours a
// content-type header and otherwise sniffs the first byte.
import { Packr } from 'msgpackr';
import { TidemarkError } from './errors.js';

export const CONTENT_TYPE_HEADER = 'Content-Type';
export const MSGPACK = 'application/msgpack';
export const JSON_TYPE = 'application/json';
/** Commands larger than this are rejected before decoding; the stream enforces the same limit. */
export const MAX_COMMAND_BYTES = 64 * 1024;

// Plain maps (no msgpackr records) so that any msgpack implementation can read our messages.
const packr = new Packr({ useRecords: false, mapsAsObjects: true });

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
 * A msgpack map begins with 0x80-0x8f, 0xde or 0xdf; "{" (0x7b) would be a bare integer in
 * msgpack, which is never a valid message, so sniffing it as JSON is unambiguous. An empty payload
 * counts as JSON: a person typed it.
 */
export function payloadEncoding(data: Uint8Array, headers?: HeaderReader): PayloadEncoding {
  const declared = headers?.get(CONTENT_TYPE_HEADER)?.toLowerCase() ?? '';
  if (declared.includes('json')) return 'json';
  if (declared.includes('msgpack')) return 'msgpack';
  const first = firstSignificantByte(data);
  return first === undefined || first === 0x7b || first === 0x5b ? 'json' : 'msgpack';
}

/**
 * Decodes a payload. An empty payload decodes to `{}` so that `nats pub <subject> ""` requests a
 * backup with defaults. Throws COMMAND_UNDECODABLE with a reason that can be shown to the sender.
 */
export function decode(data: Uint8Array, headers?: HeaderReader): unknown {
  if (firstSignificantByte(data) === undefined) return {};
  const useJson = payloadEncoding(data, headers) === 'json';
  try {
    if (useJson) return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    return packr.unpack(data);
  } catch (cause) {
    const how = useJson ? 'JSON' : 'msgpack';
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new TidemarkError('COMMAND_UNDECODABLE', `payload is not valid ${how}: ${detail}`, { cause });
  }
}
