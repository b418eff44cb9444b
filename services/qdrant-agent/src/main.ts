// qdrant-agent: wiring only. Config → NATS → storage, keys → one guarded Qdrant port per target →
// durable consumers → handlers → shutdown.
import { hostname } from 'node:os';
import { COMMANDS_STREAM, RequestBackup, RequestRestore, TidemarkError, consumers, filters } from '@tidemark/contracts';
import { loadConfig, storageConfig, type Target } from '@tidemark/config';
import { bootstrap, ensureConsumer, readServiceVersion, runConsumer, runMain } from '@tidemark/runtime';
import { createQdrantPort, guardPort, type GuardedPort } from '@tidemark/qdrant';
import { keyRingFromConfig } from '@tidemark/pipeline';
import { openArtifactStore } from '@tidemark/storage';
import { handleBackupRequested } from './handlers/backup-requested.js';
import type { BackupDeps } from './backup/collections.js';
import { handleRestoreRequested } from './handlers/restore-requested.js';

runMain('qdrant-agent', async () => {
  const { config } = loadConfig(process.env);
  const keys = keyRingFromConfig(config);
  const service = await bootstrap('qdrant-agent', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const { logger, shutdown } = service;
  const { store, breakerState, close } = await openArtifactStore(storageConfig(config), logger);
  shutdown.add('storage', close);
  service.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState() } }));

  // One guarded port (breakers, timeouts, error mapping) per target, shared by its backups and restores.
  const ports = new Map<string, GuardedPort>();
  for (const target of config.targets) {
    if (target.engine !== 'qdrant' || !target.qdrant) continue;
    const { url, apiKeyEnv, timeoutMs } = target.qdrant;
    const apiKey = apiKeyEnv === undefined ? undefined : process.env[apiKeyEnv];
    if (apiKeyEnv !== undefined && !apiKey) {
      throw new TidemarkError('CONFIG_INVALID', `target "${target.name}": qdrant.apiKeyEnv names ${apiKeyEnv}, which is not set; set it or remove apiKeyEnv`);
    }
    const port = guardPort(
      createQdrantPort({ url, ...(apiKey === undefined ? {} : { apiKey }), ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
      logger,
      target.name,
      timeoutMs === undefined ? {} : { timeoutMs },
    );
    ports.set(target.name, port);
    shutdown.add(`qdrant breakers of ${target.name}`, () => port.shutdown());
  }
  service.addHealthCheck('qdrant', () => {
    const breakers = Object.fromEntries([...ports].map(([name, port]) => [name, port.breakers.quick.state]));
    const ok = Object.values(breakers).every((state) => state !== 'open');
    // An unreachable Qdrant is waited for (the breaker retries it): degraded, not a reason to restart the agent.
    return ok ? { ok, detail: { breakers } } : { ok, degraded: true, detail: { breakers } };
  });
  const portFor = (target: Target) => {
    const port = ports.get(target.name);
    if (!port) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no qdrant connection`);
    return port;
  };

  const deps: BackupDeps = {
    config,
    store,
    portFor,
    publisher: service.publisher,
    keys,
    agent: { id: service.instanceId || `qdrant-agent-${hostname()}-${process.pid}`, version: readServiceVersion() },
    clock: () => new Date(),
  };
  const consumerOptions = { ackWaitMs: service.ackWaitMs, maxDeliver: service.maxDeliver };
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentBackups('qdrant'), filters.backupCommandsFor('qdrant'), consumerOptions);
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentRestores('qdrant'), filters.restoreCommandsFor('qdrant'), consumerOptions);

  const common = { js: service.js, stream: COMMANDS_STREAM.name, logger, kind: 'command' as const, publisher: service.publisher, policy: service.consumerPolicy };
  const backups = runConsumer({ ...common, durable: consumers.agentBackups('qdrant'), schema: RequestBackup, handler: (message, ctx) => handleBackupRequested(message, deps, ctx) });
  const restores = runConsumer({ ...common, durable: consumers.agentRestores('qdrant'), schema: RequestRestore, handler: (message, ctx) => handleRestoreRequested(message, deps, ctx) });
  shutdown.add('backup consumer', () => backups.stop());
  shutdown.add('restore consumer', () => restores.stop());
  service.watchConsumer(backups);
  service.watchConsumer(restores);
  service.markStarted();
  logger.info({ targets: [...ports.keys()], storage: store.backend.properties.location }, 'qdrant-agent ready');
});
