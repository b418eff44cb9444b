// files-agent: wiring only. Config → NATS → storage, keys → one source per files target →
// durable consumers → handlers → shutdown.
import { hostname } from 'node:os';
import { COMMANDS_STREAM, RequestBackup, RequestRestore, TidemarkError, consumers, filters } from '@tidemark/contracts';
import { filesSourceOf, loadConfig, storageConfig, type Target } from '@tidemark/config';
import { bootstrap, createCorePublisher, ensureConsumer, readServiceVersion, runConsumer, runMain } from '@tidemark/runtime';
import { keyRingFromConfig } from '@tidemark/pipeline';
import { openArtifactStore } from '@tidemark/storage';
import { openSource, type FilesSource } from '@tidemark/files';
import { handleBackupRequested } from './handlers/backup-requested.js';
import { handleRestoreRequested } from './handlers/restore-requested.js';
import type { AgentDeps } from './agent-deps.js';

runMain('files-agent', async () => {
  const { config } = loadConfig(process.env);
  const keys = keyRingFromConfig(config);
  const service = await bootstrap('files-agent', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const { logger, shutdown } = service;
  const { store, breakerState, close } = await openArtifactStore(storageConfig(config), logger);
  shutdown.add('storage', close);
  service.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState() } }));

  // Sources are opened at start-up, so a missing S3 credential fails the start, naming the variable.
  const sources = new Map<string, FilesSource>();
  for (const target of config.targets) {
    if (target.engine === 'files') sources.set(target.name, openSource(filesSourceOf(target)));
  }
  const sourceFor = (target: Target) => {
    const source = sources.get(target.name);
    if (!source) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no files source`);
    return source;
  };

  const deps: AgentDeps = {
    config,
    store,
    sourceFor,
    publisher: service.publisher,
    progress: createCorePublisher(service.nc, { encoding: config.events.encoding, onError: (subject, error) => logger.debug({ subject, err: error }, 'a progress report was not published') }),
    keys,
    agent: { id: service.instanceId || `files-agent-${hostname()}-${process.pid}`, version: readServiceVersion() },
    clock: () => new Date(),
  };
  const consumerOptions = { ackWaitMs: service.ackWaitMs, maxDeliver: service.maxDeliver };
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentBackups('files'), filters.backupCommandsFor('files'), consumerOptions);
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentRestores('files'), filters.restoreCommandsFor('files'), consumerOptions);

  const common = { js: service.js, stream: COMMANDS_STREAM.name, logger, kind: 'command' as const, publisher: service.publisher, policy: service.consumerPolicy };
  const backups = runConsumer({ ...common, durable: consumers.agentBackups('files'), schema: RequestBackup, handler: (message, ctx) => handleBackupRequested(message, deps, ctx) });
  const restores = runConsumer({ ...common, durable: consumers.agentRestores('files'), schema: RequestRestore, handler: (message, ctx) => handleRestoreRequested(message, deps, ctx) });
  shutdown.add('backup consumer', () => backups.stop());
  shutdown.add('restore consumer', () => restores.stop());
  service.watchConsumer(backups);
  service.watchConsumer(restores);
  service.markStarted();
  logger.info({ targets: [...sources].map(([name, source]) => ({ name, kind: source.kind, location: source.location })), storage: store.backend.properties.location }, 'files-agent ready');
});
