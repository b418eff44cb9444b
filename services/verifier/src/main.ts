// verifier: wiring only. Config → NATS → storage, keys, sandbox → artifact.stored consumer → shutdown.
import { ArtifactStored, EVENTS_STREAM, consumers, filters } from '@tidemark/contracts';
import { loadConfig } from '@tidemark/config';
import { bootstrap, ensureConsumer, runConsumer } from '@tidemark/runtime';
import { keyRingFromConfig, openArtifactStore, openPgCluster, runMain } from '@tidemark/service';
import { handleArtifactStored, type VerifierDeps } from './handlers/artifact-stored.js';

runMain('verifier', async () => {
  const { config } = loadConfig(process.env);
  const keys = keyRingFromConfig(config);
  const service = await bootstrap('verifier', { natsUrl: config.nats.url });
  const { logger, shutdown } = service;
  const { store, breakerState, close } = await openArtifactStore(config, logger);
  shutdown.add('storage', close);
  service.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState() } }));
  const sandboxConnection = config.sandbox?.postgres;
  if (!sandboxConnection) logger.warn('sandbox.postgres is not configured: pg artifacts will fail verification with CONFIG_INVALID');

  const deps: VerifierDeps = {
    store,
    sandbox: sandboxConnection ? openPgCluster(sandboxConnection, 'sandbox', logger) : undefined,
    publisher: service.publisher,
    keys,
    clock: () => new Date(),
  };
  await ensureConsumer(service.jsm, EVENTS_STREAM.name, consumers.verifierArtifacts, filters.artifactStored, { ackWaitMs: service.ackWaitMs, maxDeliver: service.maxDeliver });
  const artifacts = runConsumer({
    js: service.js,
    stream: EVENTS_STREAM.name,
    durable: consumers.verifierArtifacts,
    schema: ArtifactStored,
    handler: (event, ctx) => handleArtifactStored(event, deps, ctx),
    logger,
    kind: 'event',
    publisher: service.publisher,
  });
  shutdown.add('artifact consumer', () => artifacts.stop());
  logger.info({ sandbox: deps.sandbox?.description, storage: store.backend.properties.location }, 'verifier ready');
});
