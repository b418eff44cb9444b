// Assembles the storage service from its parts, so main.ts and the integration test start the
// very same thing. Nothing here is logic: see catalog/, handlers/ and retention/.
import type { JetStreamClient, JetStreamManager, NatsConnection, Subscription } from 'nats';
import type { Compression } from '@tidemark/contracts';
import { ArtifactStored, EVENTS_STREAM, VerifyFailed, VerifyPassed, consumers, filters, type Schema } from '@tidemark/contracts';
import { ensureConsumer, runConsumer, type ConsumerPolicy, type EventPublisher, type Logger, type RunningConsumer } from '@tidemark/runtime';
import { keyRingOf, type KeyRing } from '@tidemark/pipeline';
import { WalArchive, type ArtifactStore } from '@tidemark/storage';
import { Catalog } from './catalog/catalog.js';
import { handleArtifactEvent } from './handlers/catalog-events.js';
import { serveCatalog } from './handlers/serve-catalog.js';
import { startPeriodic, type PeriodicTask } from './retention/loop.js';
import type { PlanOptions, RetentionPolicy } from './retention/plan.js';
import { runRetention, type RetentionResult } from './retention/run.js';
import { ArchiveChecker, type TargetCheckResult } from './wal/check-run.js';
import { runChunkGc, type ChunkGcResult, type ChunkGcSettings } from './files/chunk-gc.js';
import { bucketTreeReader } from './files/trees.js';

export interface StorageServiceDeps {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  readonly store: ArtifactStore;
  readonly policies: ReadonlyMap<string, RetentionPolicy>;
  readonly retentionIntervalMs: number;
  readonly orphanGraceMinutes: number;
  readonly ackWaitMs?: number;
  readonly maxDeliver?: number;
  /** The config's `consumers:` policy (bootstrap's consumerPolicy); the runtime's default otherwise. */
  readonly consumerPolicy?: ConsumerPolicy;
  readonly planOptions?: PlanOptions;
  /** Tests run retention by hand; production leaves this on. */
  readonly runRetentionPeriodically?: boolean;
  /** pg targets whose WAL is archived (config `walTargets`): their archive is checked. */
  readonly walTargets?: readonly string[];
  /** How often the WAL archive is checked (config pg.archiveCheckIntervalSeconds). */
  readonly archiveCheckIntervalMs?: number;
  /** Tests run the archive check by hand; production leaves this on. */
  readonly runArchiveChecksPeriodically?: boolean;
  /** Reads encrypted timeline history files; without it fork points are inferred from segment names. */
  readonly keyRing?: KeyRing;
  /** See planArchiveCheck; tests shorten them. */
  readonly archiveCheck?: { readonly settleMs?: number; readonly followGraceMs?: number; readonly now?: () => Date };
  /** The chunk repository's garbage collection (config storage.chunkGc). */
  readonly chunkGc?: ChunkGcSettings & { readonly intervalMs: number; readonly now?: () => Date };
  /** Tests run the chunk garbage collection by hand; production leaves this on. */
  readonly runChunkGcPeriodically?: boolean;
  /** Compression of what the collector writes back (config defaults.compression). */
  readonly compression?: Compression;
}

export interface StorageService {
  readonly catalog: Catalog;
  /** Its consumers, for readiness. */
  readonly consumers: readonly RunningConsumer[];
  /** One retention pass now (the periodic loop calls the same). */
  retentionPass(): Promise<RetentionResult>;
  /** One WAL archive check of every WAL target now (the periodic loop calls the same). */
  archiveCheckPass(): Promise<TargetCheckResult[]>;
  /** One chunk garbage collection now, after any under way (the periodic loop and retention call the same). */
  chunkGcPass(): Promise<ChunkGcResult>;
  stop(): Promise<void>;
}

export async function startStorageService(deps: StorageServiceDeps): Promise<StorageService> {
  const { logger } = deps;
  const catalog = new Catalog(deps.store, (key, error) => logger.warn({ key, err: error }, 'unreadable object skipped by the catalog; inspect or remove it'));

  // Consumers exist before the rebuild, so no event published during it is missed.
  const feeds: Array<[string, string, Schema<{ engine: ArtifactStored['engine']; target: string; artifactId: string }>]> = [
    [consumers.catalogArtifactStored, filters.artifactStored, ArtifactStored],
    [consumers.catalogVerifyPassed, filters.verifyPassed, VerifyPassed],
    [consumers.catalogVerifyFailed, filters.verifyFailed, VerifyFailed],
  ];
  for (const [durable, filter] of feeds) {
    await ensureConsumer(deps.jsm, EVENTS_STREAM.name, durable, filter, { ackWaitMs: deps.ackWaitMs, maxDeliver: deps.maxDeliver, deliverNew: true });
  }

  const count = await catalog.rebuild();
  logger.info({ artifacts: count }, 'catalog rebuilt from the bucket');

  const running: RunningConsumer[] = feeds.map(([durable, , schema]) =>
    runConsumer({
      js: deps.js,
      stream: EVENTS_STREAM.name,
      durable,
      schema,
      kind: 'event',
      publisher: deps.publisher,
      logger,
      handler: (event, context) => handleArtifactEvent(event, { catalog }, context),
      ...(deps.consumerPolicy ? { policy: deps.consumerPolicy } : {}),
    }),
  );
  const walArchive = new WalArchive(deps.store.backend);
  const readTree = bucketTreeReader(deps.store, deps.keyRing);
  const subscriptions: Subscription[] = serveCatalog(deps.nc, catalog, logger, deps.store.backend, readTree);

  const gcSettings = deps.chunkGc ?? { intervalMs: 6 * 3600_000, graceMs: 3600_000, sessionStaleMs: 6 * 3600_000 };
  // Collections never overlap: a pass asked for while one runs starts after it (and so sees what
  // the retention pass that asked for it pruned).
  let gcQueue: Promise<unknown> = Promise.resolve();
  const chunkGcPass = (): Promise<ChunkGcResult> => {
    const pass = gcQueue.then(() => runChunkGc({
      store: deps.store, readTree, logger, settings: gcSettings,
      repository: { backend: deps.store.backend, keyRing: deps.keyRing ?? keyRingOf(undefined), compression: deps.compression ?? 'gzip' },
      ...(gcSettings.now ? { now: gcSettings.now } : {}),
    }));
    gcQueue = pass;
    return pass;
  };

  const retentionPass = async () => {
    const result = await runRetention({
      catalog, store: deps.store, publisher: deps.publisher, policies: deps.policies,
      orphanGraceMinutes: deps.orphanGraceMinutes, logger, planOptions: deps.planOptions, walArchive,
    });
    logger.info({
      pruned: result.pruned.length, failed: result.failed.length,
      walFilesRemoved: result.wal.reduce((n, w) => n + w.removed.length, 0), walBytesRemoved: result.wal.reduce((n, w) => n + w.removedBytes, 0),
    }, 'retention pass finished');
    if (result.pruned.some((p) => p.engine === 'files')) await chunkGcPass();
    return result;
  };
  const periodic: PeriodicTask | undefined =
    deps.runRetentionPeriodically === false ? undefined : startPeriodic('retention', deps.retentionIntervalMs, retentionPass, logger);

  const walTargets = deps.walTargets ?? [];
  const checker = new ArchiveChecker({
    archive: walArchive, catalog, publisher: deps.publisher, logger,
    ...(deps.keyRing ? { keyRing: deps.keyRing } : {}),
    ...(deps.archiveCheck?.settleMs !== undefined ? { settleMs: deps.archiveCheck.settleMs } : {}),
    ...(deps.archiveCheck?.followGraceMs !== undefined ? { followGraceMs: deps.archiveCheck.followGraceMs } : {}),
    ...(deps.archiveCheck?.now ? { now: deps.archiveCheck.now } : {}),
  });
  const archiveCheckPass = () => checker.checkAll(walTargets);
  const archiveChecks: PeriodicTask | undefined = deps.runArchiveChecksPeriodically === false || walTargets.length === 0
    ? undefined
    : startPeriodic('wal archive check', deps.archiveCheckIntervalMs ?? 300_000, archiveCheckPass, logger);

  const chunkGcs: PeriodicTask | undefined = deps.runChunkGcPeriodically === false
    ? undefined
    : startPeriodic('chunk garbage collection', gcSettings.intervalMs, chunkGcPass, logger);

  return {
    catalog,
    consumers: running,
    retentionPass,
    archiveCheckPass,
    chunkGcPass,
    async stop() {
      await periodic?.stop();
      await archiveChecks?.stop();
      await chunkGcs?.stop();
      await gcQueue;
      for (const subscription of subscriptions) subscription.unsubscribe();
      await Promise.all(running.map((c) => c.stop()));
    },
  };
}
