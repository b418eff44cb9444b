import type { NatsConnection, Subscription } from 'nats';
import { subjects } from '@tidemark/contracts';
import { serveRequests, type Logger, type RequestHandler } from '@tidemark/runtime';
import type { StorageBackend } from '@tidemark/storage';
import type { Catalog } from '../catalog/catalog.js';
import { describeArtifact, listArtifacts } from './catalog-requests.js';
import { summariseWalArchive } from './catalog-wal.js';

/** Every storage instance answers catalog requests; one of them answers each request. */
export const CATALOG_QUEUE_GROUP = 'tidemark-catalog';

/**
 * Subscribes catalog.list and catalog.describe, and catalog.wal when given the backend the WAL
 * archive lives in (core NATS request/reply, queue group tidemark-catalog).
 */
export function serveCatalog(nc: NatsConnection, catalog: Catalog, logger: Logger, walBackend?: Pick<StorageBackend, 'list'>): Subscription[] {
  const routes: Array<[string, RequestHandler]> = [
    [subjects.catalogList(), (request) => listArtifacts(request, catalog)],
    [subjects.catalogDescribe(), (request) => describeArtifact(request, catalog)],
    ...(walBackend ? [[subjects.catalogWal(), (request: unknown) => summariseWalArchive(request, walBackend)] as [string, RequestHandler]] : []),
  ];
  return serveRequests(nc, routes, CATALOG_QUEUE_GROUP, logger);
}
