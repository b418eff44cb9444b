#!/usr/bin/env node
// tidemark-storage: the catalog (request/reply), retention and the orphan sweep. Wiring only.
import { isRetryable, TidemarkError } from '@tidemark/contracts';
import { loadConfig, storageConfig } from '@tidemark/config';
import { bootstrap, createBreaker, retryWithBackoff } from '@tidemark/runtime';
import { ArtifactStore, createBackend, guardBackend } from '@tidemark/storage';
import { retentionPolicies } from './retention/policies.js';
import { startStorageService } from './service.js';

const { config, path } = loadConfig();
const ctx = await bootstrap('storage', { natsUrl: config.nats.url });
ctx.logger.info({ config: path }, 'configuration loaded');

const rawBackend = await createBackend(storageConfig(config));
const breaker = createBreaker('storage', ctx.logger, {
  // A missing object is an answer, not an outage.
  isFailure: (error) => !(error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND'),
});
const backend = guardBackend(rawBackend, (_operation, call) =>
  retryWithBackoff(() => breaker.fire(call), {
    attempts: 3,
    baseDelayMs: 200,
    maxDelayMs: 2000,
    shouldRetry: (error) => isRetryable(error) && !(error instanceof TidemarkError && error.code === 'BREAKER_OPEN'),
  }),
);
ctx.shutdown.add('storage backend', () => rawBackend.close());
ctx.shutdown.add('storage breaker', () => breaker.shutdown());
ctx.logger.info({ storage: backend.properties.location }, 'storage backend ready');

const service = await startStorageService({
  nc: ctx.nc,
  js: ctx.js,
  jsm: ctx.jsm,
  publisher: ctx.publisher,
  logger: ctx.logger,
  store: new ArtifactStore(backend),
  policies: retentionPolicies(config),
  retentionIntervalMs: config.retention.intervalSeconds * 1000,
  orphanGraceMinutes: config.storage.orphanGraceMinutes,
  ackWaitMs: ctx.ackWaitMs,
  maxDeliver: ctx.maxDeliver,
});
ctx.shutdown.add('storage service', () => service.stop());
ctx.addHealthCheck('storage', () => ({ ok: breaker.state !== 'open', detail: { breaker: breaker.state, artifacts: service.catalog.size } }));
ctx.logger.info('storage service started');
