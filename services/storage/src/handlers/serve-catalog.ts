import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from 'nats';
import { CONTENT_TYPE_HEADER, subjects, toErrorInfo } from '@tidemark/contracts';
import type { Logger } from '@tidemark/runtime';
import type { StorageBackend } from '@tidemark/storage';
import type { Catalog } from '../catalog/catalog.js';
import { describeArtifact, listArtifacts } from './catalog-requests.js';
import { summariseWalArchive } from './catalog-wal.js';
import { decodeRequest, encodeReply, requestEncoding } from './wire.js';

/** Every storage instance answers catalog requests; one of them answers each request. */
export const CATALOG_QUEUE_GROUP = 'tidemark-catalog';

type RequestHandler = (request: unknown, catalog: Catalog) => unknown | Promise<unknown>;

/**
 * Subscribes catalog.list and catalog.describe, and catalog.wal when given the backend the WAL
 * archive lives in (core NATS request/reply, queue group tidemark-catalog).
 */
export function serveCatalog(nc: NatsConnection, catalog: Catalog, logger: Logger, walBackend?: Pick<StorageBackend, 'list'>): Subscription[] {
  const routes: Array<[string, RequestHandler]> = [
    [subjects.catalogList(), listArtifacts],
    [subjects.catalogDescribe(), describeArtifact],
    ...(walBackend ? [[subjects.catalogWal(), (request: unknown) => summariseWalArchive(request, walBackend)] as [string, RequestHandler]] : []),
  ];
  return routes.map(([subject, handler]) =>
    nc.subscribe(subject, {
      queue: CATALOG_QUEUE_GROUP,
      callback: (error, msg) => {
        if (error) {
          logger.error({ err: error, subject }, 'catalog subscription failed');
          return;
        }
        void answer(msg, handler, catalog, logger);
      },
    }),
  );
}

async function answer(msg: Msg, handler: RequestHandler, catalog: Catalog, logger: Logger): Promise<void> {
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'catalog message without a reply subject ignored; use a request (nats req)');
    return;
  }
  const encoding = requestEncoding(msg.data, msg.headers);
  let reply: unknown;
  const decoded = decodeRequest(msg.data, msg.headers);
  if (!decoded.ok) {
    reply = { error: decoded.error };
  } else {
    try {
      reply = await handler(decoded.value, catalog);
    } catch (error) {
      reply = { error: toErrorInfo(error) };
    }
  }
  if (typeof reply === 'object' && reply !== null && 'error' in reply) {
    logger.info({ subject: msg.subject, error: (reply as { error: unknown }).error }, 'catalog request answered with an error');
  }
  const { data, contentType } = encodeReply(reply, encoding);
  const h = natsHeaders();
  h.set(CONTENT_TYPE_HEADER, contentType);
  msg.respond(data, { headers: h });
}
