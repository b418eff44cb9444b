// verifier: wiring only. Config → NATS → storage, keys, sandboxes (pg, qdrant), files work dir → a dead verifier's scratch space removed → artifact.stored consumer → shutdown.
import { ArtifactStored, EVENTS_STREAM, TidemarkError, consumers, filters } from '@tidemark/contracts';
import { loadConfig, storageConfig } from '@tidemark/config';
import { bootstrap, ensureConsumer, runConsumer, runMain } from '@tidemark/runtime';
import { keyRingFromConfig } from '@tidemark/pipeline';
import { openArtifactStore } from '@tidemark/storage';
import { openPgCluster } from '@tidemark/pg';
import { createQdrantPort, guardPort, type GuardedPort } from '@tidemark/qdrant';
import { handleArtifactStored, type VerifierDeps } from './handlers/artifact-stored.js';
import { scratchDirectoryRoot } from './pg-base-verify.js';
import { removeLeftoverScratch, scratchDatabaseClaims } from './scratch.js';
import { filesScratchRoot } from './files-verify.js';

runMain('verifier', async () => {
  const { config } = loadConfig(process.env);
  const keys = keyRingFromConfig(config);
  const service = await bootstrap('verifier', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const { logger, shutdown } = service;
  const { store, breakerState, close } = await openArtifactStore(storageConfig(config), logger);
  shutdown.add('storage', close);
  service.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState() } }));
  const sandboxConnection = config.sandbox?.postgres;
  if (!sandboxConnection) logger.warn('sandbox.postgres is not configured: pg logical artifacts will fail verification with CONFIG_INVALID');

  const qdrantSandbox = config.sandbox?.qdrant;
  let sandboxQdrant: GuardedPort | undefined;
  if (qdrantSandbox) {
    const apiKey = qdrantSandbox.apiKeyEnv === undefined ? undefined : process.env[qdrantSandbox.apiKeyEnv];
    if (qdrantSandbox.apiKeyEnv !== undefined && !apiKey) {
      throw new TidemarkError('CONFIG_INVALID', `sandbox.qdrant.apiKeyEnv names ${qdrantSandbox.apiKeyEnv}, which is not set; set it or remove apiKeyEnv`);
    }
    const port = guardPort(
      createQdrantPort({ url: qdrantSandbox.url, ...(apiKey ? { apiKey } : {}), ...(qdrantSandbox.timeoutMs === undefined ? {} : { timeoutMs: qdrantSandbox.timeoutMs }) }),
      logger,
      'sandbox',
      qdrantSandbox.timeoutMs === undefined ? {} : { timeoutMs: qdrantSandbox.timeoutMs },
    );
    sandboxQdrant = port;
    shutdown.add('qdrant sandbox', () => port.shutdown());
    service.addHealthCheck('qdrant sandbox', () => ({ ok: port.breakers.quick.state !== 'open', detail: { breaker: port.breakers.quick.state, slowBreaker: port.breakers.slow.state } }));
  } else {
    logger.warn('sandbox.qdrant is not configured: qdrant artifacts will fail verification with CONFIG_INVALID');
  }

  const deps: VerifierDeps = {
    store,
    sandbox: sandboxConnection ? openPgCluster(sandboxConnection, 'sandbox', logger) : undefined,
    sandboxQdrant,
    // Base backups need no sandbox server: the verifier starts each one itself, below pg.workDir.
    pgBase: { workDir: config.pg.workDir, osUser: config.pg.osUser },
    filesWorkDir: config.files.workDir,
    publisher: service.publisher,
    keys,
    clock: () => new Date(),
    scratchClaims: sandboxConnection ? scratchDatabaseClaims(sandboxConnection) : undefined,
  };
  await removeLeftoverScratch({ claims: deps.scratchClaims, sandbox: deps.sandbox, directoryRoot: scratchDirectoryRoot(config.pg.workDir), filesDirectoryRoot: filesScratchRoot(config.files.workDir) }, logger);
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
    policy: service.consumerPolicy,
  });
  shutdown.add('artifact consumer', () => artifacts.stop());
  service.watchConsumer(artifacts);
  service.markStarted();
  logger.info({ sandbox: deps.sandbox?.description, sandboxQdrant: qdrantSandbox && new URL(qdrantSandbox.url).host, storage: store.backend.properties.location }, 'verifier ready');
});
