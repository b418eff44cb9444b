#!/usr/bin/env node
// tidemark-storage: the catalog (request/reply), retention, the orphan sweep and the WAL archive
// check. Wiring only.
import { loadConfig, storageConfig, walTargets } from '@tidemark/config';
import { keyRingFromConfig, type KeyRing } from '@tidemark/pipeline';
import { bootstrap, runMain } from '@tidemark/runtime';
import { openArtifactStore } from '@tidemark/storage';
import { retentionPolicies } from './retention/policies.js';
import { startStorageService } from './service.js';

runMain('storage', async () => {
  const { config, path } = loadConfig();
  const ctx = await bootstrap('storage', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  ctx.logger.info({ config: path }, 'configuration loaded');

  const { store, breakerState, close } = await openArtifactStore(storageConfig(config), ctx.logger);
  ctx.shutdown.add('storage backend', close);
  ctx.logger.info({ storage: store.backend.properties.location }, 'storage backend ready');

  // To read timeline history files of an encrypted WAL archive (without a key the archive check
  // infers timeline fork points from segment names), and the trees of encrypted files snapshots
  // (without it catalog.tree cannot list them and the chunk garbage collector deletes nothing).
  let keyRing: KeyRing | undefined;
  try {
    keyRing = keyRingFromConfig(config);
  } catch (error) {
    ctx.logger.warn({ err: error }, 'encryption key not loaded; encrypted timeline history files are not read by the WAL archive check, encrypted files snapshots cannot be listed, and the chunk garbage collection deletes nothing while any exists');
  }

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
    consumerPolicy: ctx.consumerPolicy,
    walTargets: walTargets(config).map((t) => t.name),
    archiveCheckIntervalMs: config.pg.archiveCheckIntervalSeconds * 1000,
    ...(keyRing ? { keyRing } : {}),
    chunkGc: {
      intervalMs: config.storage.chunkGc.intervalMinutes * 60_000,
      graceMs: config.storage.chunkGc.graceMinutes * 60_000,
      sessionStaleMs: config.storage.chunkGc.sessionStaleMinutes * 60_000,
    },
    ...(config.defaults.compression ? { compression: config.defaults.compression } : {}),
  });
  ctx.shutdown.add('storage service', () => service.stop());
  ctx.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState(), artifacts: service.catalog.size } }));
  service.consumers.forEach((consumer) => ctx.watchConsumer(consumer));
  ctx.markStarted();
  ctx.logger.info('storage service started');
});
