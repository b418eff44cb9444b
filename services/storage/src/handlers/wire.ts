// Request/reply encoding: requests may be JSON (people with the `nats` CLI) or msgpack (tools);
// the reply uses the request's encoding so that `nats req catalog.list '{}'` prints readable JSON.
import {
  JSON_TYPE, MAX_COMMAND_BYTES, MSGPACK, TidemarkError, decode, encode, encodeJson, toErrorInfo,
  payloadEncoding, type HeaderReader, type PayloadEncoding,
} from '@tidemark/contracts';

export type WireEncoding = PayloadEncoding;

/** The encoding the sender used; the reply uses the same. */
export const requestEncoding = payloadEncoding;

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
