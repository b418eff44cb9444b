// Request/reply encoding: requests may be JSON (people with the `nats` CLI) or msgpack (tools);
// the reply uses the request's encoding so that `nats req catalog.list '{}'` prints readable JSON.
import {
  CONTENT_TYPE_HEADER, JSON_TYPE, MAX_COMMAND_BYTES, MSGPACK, TidemarkError, decode, encode, encodeJson, toErrorInfo,
  type HeaderReader,
} from '@tidemark/contracts';

export type WireEncoding = 'json' | 'msgpack';

function firstSignificantByte(data: Uint8Array): number | undefined {
  for (const byte of data) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return byte;
  }
  return undefined;
}

/** The encoding the sender used (an empty request counts as JSON: it was typed by a person). */
export function requestEncoding(data: Uint8Array, headers?: HeaderReader): WireEncoding {
  const declared = headers?.get(CONTENT_TYPE_HEADER)?.toLowerCase() ?? '';
  if (declared.includes('json')) return 'json';
  if (declared.includes('msgpack')) return 'msgpack';
  const first = firstSignificantByte(data);
  return first === undefined || first === 0x7b || first === 0x5b ? 'json' : 'msgpack';
}

export type DecodedRequest = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: ReturnType<typeof toErrorInfo> };

export function decodeRequest(data: Uint8Array, headers?: HeaderReader): DecodedRequest {
  try {
    if (data.length > MAX_COMMAND_BYTES) {
      throw new TidemarkError('COMMAND_TOO_LARGE', `request is ${data.length} bytes, more than the ${MAX_COMMAND_BYTES}-byte limit; send a smaller request`);
    }
    return { ok: true, value: decode(data, headers) };
  } catch (error) {
    return { ok: false, error: toErrorInfo(error) };
  }
}

export function encodeReply(value: unknown, encoding: WireEncoding): { data: Uint8Array; contentType: string } {
  return encoding === 'json' ? { data: encodeJson(value), contentType: JSON_TYPE } : { data: encode(value), contentType: MSGPACK };
}
