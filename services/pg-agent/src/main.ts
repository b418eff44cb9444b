// pg-agent: wiring only. Config → NATS → storage, keys → durable consumers → handlers → shutdown.
import { hostname } from 'node:os';
import { COMMANDS_STREAM, RequestBackup, RequestRestore, consumers, filters, subjects } from '@tidemark/contracts';
import { loadConfig, storageConfig, type Target } from '@tidemark/config';
import { bootstrap, ensureConsumer, readServiceVersion, runConsumer, runMain, serveRequests, startSourceMonitor } from '@tidemark/runtime';
import { handleBackupRequested } from './handlers/backup-requested.js';
import type { BackupDeps } from './backup/take-backup.js';
import { handleRestoreRequested } from './handlers/restore-requested.js';
import { keyRingFromConfig } from '@tidemark/pipeline';
import { openArtifactStore, WalArchive } from '@tidemark/storage';
import { openPgCluster } from '@tidemark/pg';
import { createWalArchivers } from './wal/start.js';
import { answerWalStatus, WAL_STATUS_QUEUE_GROUP } from './handlers/status-wal.js';
import { pgSourceProbe, sourceProbeIntervalMs } from './sources.js';

runMain('pg-agent', async () => {
  const { config } = loadConfig(process.env);
  const keys = keyRingFromConfig(config);
  const service = await bootstrap('pg-agent', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const { logger, shutdown } = service;
  const { store, breakerState, close } = await openArtifactStore(storageConfig(config), logger);
  shutdown.add('storage', close);
  service.addHealthCheck('storage', () => ({ ok: breakerState() !== 'open', detail: { breaker: breakerState() } }));

  // One breaker per target, shared by its backups and restores.
  const clusters = new Map<string, ReturnType<typeof openPgCluster>>();
  const clusterFor = (target: Target) => {
    let cluster = clusters.get(target.name);
    if (!cluster) clusters.set(target.name, (cluster = openPgCluster(target.postgres!, 'source', logger)));
    return cluster;
  };
  const deps: BackupDeps = {
    config,
    store,
    clusterFor,
    publisher: service.publisher,
    keys,
    agent: { id: service.instanceId || `pg-agent-${hostname()}-${process.pid}`, version: readServiceVersion() },
    clock: () => new Date(),
  };
  const consumerOptions = { ackWaitMs: service.ackWaitMs, maxDeliver: service.maxDeliver };
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentBackups('pg'), filters.backupCommandsFor('pg'), consumerOptions);
  await ensureConsumer(service.jsm, COMMANDS_STREAM.name, consumers.agentRestores('pg'), filters.restoreCommandsFor('pg'), consumerOptions);

  const common = { js: service.js, stream: COMMANDS_STREAM.name, logger, kind: 'command' as const, publisher: service.publisher, policy: service.consumerPolicy };
  const backups = runConsumer({ ...common, durable: consumers.agentBackups('pg'), schema: RequestBackup, handler: (message, ctx) => handleBackupRequested(message, deps, ctx) });
  const restores = runConsumer({ ...common, durable: consumers.agentRestores('pg'), schema: RequestRestore, handler: (message, ctx) => handleRestoreRequested(message, deps, ctx) });
  shutdown.add('backup consumer', () => backups.stop());
  shutdown.add('restore consumer', () => restores.stop());
  service.watchConsumer(backups);
  service.watchConsumer(restores);

  // Each source's reachability: a database outage makes the agent degraded, not failing.
  const sources = startSourceMonitor({
    sources: new Map(config.targets.filter((t) => t.engine === 'pg' && t.postgres).map((t) => [t.name, pgSourceProbe(t.postgres!)] as const)),
    logger,
    intervalMs: sourceProbeIntervalMs(process.env),
  });
  shutdown.add('source probes', () => sources.stop());
  for (const target of config.targets) if (target.engine === 'pg' && target.postgres) service.addHealthCheck(`source:${target.name}`, () => sources.check(target.name));

  // Continuous WAL archiving: one supervised pg_receivewal per target with wal.enabled. It starts
  // in the background (an unreachable server is retried, never fatal); shutdown stops it before
  // storage closes (steps run newest first), letting the upload in flight finish.
  const wal = await createWalArchivers({ config, keys, archive: new WalArchive(store.backend), publisher: service.publisher, agent: deps.agent, logger, clock: deps.clock });
  for (const { target, error } of wal.refused) {
    logger.error({ target, code: error.code }, error.message);
    // The agent still backs up: the refused WAL archiving is reported, not a reason to restart it.
    service.addHealthCheck(`wal:${target}`, () => ({ ok: false, degraded: true, detail: { state: 'refused', receiverUp: false, error: error.message } }));
  }
  for (const archiver of wal.archivers) {
    archiver.start();
    service.addHealthCheck(`wal:${archiver.target}`, () => archiver.health());
    shutdown.add(`wal archiver ${archiver.target}`, () => archiver.stop());
  }
  const statusRequests = serveRequests(service.nc, [[subjects.statusWal(), (request) => answerWalStatus(request, { agent: deps.agent.id, ...wal })]], WAL_STATUS_QUEUE_GROUP, logger);
  shutdown.add('status requests', () => statusRequests.forEach((subscription) => subscription.unsubscribe()));
  // Ready once every source answered (or is reported unreachable) the first probe.
  await sources.firstRound;
  service.markStarted();
  logger.info(
    { targets: config.targets.filter((t) => t.engine === 'pg').map((t) => t.name), walTargets: wal.archivers.map((a) => a.target), storage: store.backend.properties.location },
    'pg-agent ready',
  );
});
