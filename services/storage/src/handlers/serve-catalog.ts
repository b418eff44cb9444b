import type { NatsConnection, Subscription } from 'nats';
import { subjects } from '@tidemark/contracts';
import { serveRequests, type Logger, type RequestHandler } from '@tidemark/runtime';
import type { StorageBackend } from '@tidemark/storage';
import type { Catalog } from '../catalog/catalog.js';
import { describeArtifact, listArtifacts } from './catalog-requests.js';
import { summariseWalArchive } from './catalog-wal.js';
import { listSnapshotTree } from './catalog-tree.js';
import type { TreeReader } from '../files/trees.js';

/** Every storage instance answers catalog requests; one of them answers each request. */
export const CATALOG_QUEUE_GROUP = 'tidemark-catalog';

/**
 * Subscribes catalog.list and catalog.describe, catalog.wal when given the backend the WAL
 * archive lives in, and catalog.tree when given a tree reader (core NATS request/reply, queue
 * group tidemark-catalog).
 */
export function serveCatalog(nc: NatsConnection, catalog: Catalog, logger: Logger, walBackend?: Pick<StorageBackend, 'list'>, readTree?: TreeReader): Subscription[] {
  const routes: Array<[string, RequestHandler]> = [
    [subjects.catalogList(), (request) => listArtifacts(request, catalog)],
    [subjects.catalogDescribe(), (request) => describeArtifact(request, catalog)],
    ...(walBackend ? [[subjects.catalogWal(), (request: unknown) => summariseWalArchive(request, walBackend)] as [string, RequestHandler]] : []),
    ...(readTree ? [[subjects.catalogTree(), (request: unknown) => listSnapshotTree(request, { catalog, readTree })] as [string, RequestHandler]] : []),
  ];
  return serveRequests(nc, routes, CATALOG_QUEUE_GROUP, logger);
}
