#!/usr/bin/env node
// tidemark-storage: the catalog (request/reply), retention and the orphan sweep. Wiring only.
import { loadConfig } from '@tidemark/config';
import { bootstrap } from '@tidemark/runtime';
import { openArtifactStore, runMain } from '@tidemark/service';
import { retentionPolicies } from './retention/policies.js';
import { startStorageService } from './service.js';

runMain('storage', async () => {
  const { config, path } = loadConfig();
  const ctx = await bootstrap('storage', { natsUrl: config.nats.url });
  ctx.logger.info({ config: path }, 'configuration loaded');

  const { store, breakerState, close } = await openArtifactStore(config, ctx.logger);
  ctx.shutdown.add('storage backend', close);
  ctx.logger.info({ storage: store.backend.properties.location }, 'storage backend ready');

  const service = await startStorageService({
    nc: ctx.nc,
    js: ctx.js,
    jsm: ctx.jsm,
    publisher: ctx.publisher,
    logger: ctx.logger,
    store,
    policies: retentionPolicies(config),
    retentionIntervalMs: config.retention.intervalSeconds * 1000,
    orphanGraceMinutes: config.storage.orphanGraceMinutes,
    ackWaitMs: ctx.ackWaitMs,
    maxDeliver: ctx.maxDeliver,
  });
  ctx.shutdown.add('storage service', () => service.stop());
  ctx.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState(), artifacts: service.catalog.size } }));
  ctx.logger.info('storage service started');
});
