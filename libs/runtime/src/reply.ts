// Core NATS request/reply, shared by every service that answers questions (the catalog, the WAL
// status). Requests may be JSON (people with the `nats` CLI) or msgpack (tools); the reply uses
// the request's encoding so that `nats req catalog.list '{}'` prints readable JSON.
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from 'nats';
import {
  CONTENT_TYPE_HEADER, JSON_TYPE, MAX_COMMAND_BYTES, MSGPACK, TidemarkError, decode, encode, encodeJson, payloadEncoding, toErrorInfo,
  type HeaderReader, type PayloadEncoding,
} from '@tidemark/contracts';
import type { Logger } from './logger.js';

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

/** Answers a decoded request; an `{ error }` reply (or a throw) is sent as `{ error: ErrorInfo }`. */
export type RequestHandler = (request: unknown) => unknown | Promise<unknown>;

/** Subscribes each subject in `queue` (one member answers each request) and answers with its handler. */
export function serveRequests(nc: NatsConnection, routes: ReadonlyArray<readonly [string, RequestHandler]>, queue: string, logger: Logger): Subscription[] {
  return routes.map(([subject, handler]) =>
    nc.subscribe(subject, {
      queue,
      callback: (error, msg) => {
        if (error) {
          logger.error({ err: error, subject }, 'request subscription failed');
          return;
        }
        void answer(msg, handler, logger);
      },
    }),
  );
}

async function answer(msg: Msg, handler: RequestHandler, logger: Logger): Promise<void> {
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'message without a reply subject ignored; send a request (nats req)');
    return;
  }
  const encoding = requestEncoding(msg.data, msg.headers);
  let reply: unknown;
  const decoded = decodeRequest(msg.data, msg.headers);
  if (!decoded.ok) {
    reply = { error: decoded.error };
  } else {
    try {
      reply = await handler(decoded.value);
    } catch (error) {
      reply = { error: toErrorInfo(error) };
    }
  }
  if (typeof reply === 'object' && reply !== null && 'error' in reply) {
    logger.info({ subject: msg.subject, error: (reply as { error: unknown }).error }, 'request answered with an error');
  }
  const { data, contentType } = encodeReply(reply, encoding);
  const h = natsHeaders();
  h.set(CONTENT_TYPE_HEADER, contentType);
  msg.respond(data, { headers: h });
}
