import { headers as natsHeaders, type NatsConnection } from 'nats';
import {
  CONTENT_TYPE_HEADER, MSGPACK, TidemarkError, decode, encode, isErrorCode, subjects,
  type CatalogEntry, type CatalogListReply, type CatalogListRequest, type CatalogTreeReply, type CatalogTreeRequest, type CatalogWalReply, type Engine, type ErrorInfo, type WalStatusReply,
} from '@tidemark/contracts';
import { natsFailure } from './nats-errors.js';


/** The catalog's reply types live in contracts; the CLI reads them as they are. */
export type CatalogArtifact = CatalogEntry;
export type { CatalogListReply };

/** Sends one catalog request (msgpack) and returns the reply, or throws its error as a TidemarkError. */
async function request<T>(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number, who = 'the catalog (tidemark storage service)'): Promise<T> {
  const h = natsHeaders();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  let reply: unknown;
  try {
    const msg = await nc.request(subject, encode(body), { timeout: timeoutMs, headers: h });
    reply = decode(msg.data, msg.headers);
  } catch (error) {
    throw natsFailure(error, subject, who);
  }
  if (typeof reply === 'object' && reply !== null && 'error' in reply) {
    const info = (reply as { error: Partial<ErrorInfo> }).error;
    throw new TidemarkError(isErrorCode(info.code) ? info.code : 'INTERNAL', info.message ?? 'the catalog answered with an error');
  }
  return reply as T;
}

export function listCatalog(nc: NatsConnection, body: CatalogListRequest, timeoutMs: number): Promise<CatalogListReply> {
  return request<CatalogListReply>(nc, subjects.catalogList(), body, timeoutMs);
}

export const ALL_ARTIFACTS_LIMIT = 10_000;

/** The WAL archive per target (storage service). */
export function walCatalog(nc: NatsConnection, timeoutMs: number): Promise<CatalogWalReply> {
  return request<CatalogWalReply>(nc, subjects.catalogWal(), {}, timeoutMs);
}

/** The entries of a files snapshot under a path (storage service). */
export function treeCatalog(nc: NatsConnection, body: CatalogTreeRequest, timeoutMs: number): Promise<CatalogTreeReply> {
  return request<CatalogTreeReply>(nc, subjects.catalogTree(), body, timeoutMs);
}

/** The live WAL receivers (pg-agent). */
export function walReceivers(nc: NatsConnection, timeoutMs: number): Promise<WalStatusReply> {
  return request<WalStatusReply>(nc, subjects.statusWal(), {}, timeoutMs, 'the pg-agent');
}
export type { Engine };
