// backup.requested.qdrant.<target>: one artifact per selected collection (the command's
// `collections`, else the target's, else every collection on the server), streamed through the
// pipeline into storage and committed by its manifest, written last. Redeliveries of one command
// map to the same artifact ids, so a collection whose artifact is already committed is only
// announced again.
//   snapshot     a Qdrant collection snapshot (created with wait=true, deleted server-side
//                afterwards in every case, failures included)
//   export       the portable logical export (qdrant-export-v1)
//   incremental  a delta against the newest export/incremental of the same collection; without
//                one, a full export is made instead (kind "export")
import type { Readable } from 'node:stream';
import {
  BackupStarted, QdrantSourceFacts, TidemarkError, messageIds, subjects, type ArtifactKind, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, findTarget, type Target } from '@tidemark/config';
import { newArtifactId, openDecoded } from '@tidemark/storage';
import { defaultCompression, encodeStream, settleFirstCause, type KeyRing } from '@tidemark/pipeline';
import { ack, failed, reject, reportingBytes, retriesMayHelp, type FailureDecision, type Outcome } from '@tidemark/runtime';
import {
  collectFacts, exportCollection, exportDelta, qdrantFactsOf, readIdSet, snapshotCollection, EXPORT_COVERAGE, EXPORT_FORMAT, SINGLE_NODE_COVERAGE,
  SNAPSHOT_FORMAT, type ExportStream, type QdrantPort,
} from '@tidemark/qdrant';
import {
  announceArtifact, backupFailed, eventScope, manifestOf, publishBackupFailed, requestIdOf, targetOfSubject, unknownTarget,
} from '@tidemark/service';
import type { AgentDeps, Context } from './common.js';

export type BackupDeps = AgentDeps;

const QDRANT_KINDS: readonly ArtifactKind[] = ['snapshot', 'export', 'incremental'];

/** The artifact id of one collection of one command: stable across redeliveries. */
export const collectionArtifactId = (requestId: string, collection: string, storedAt: Date): string => newArtifactId(`${requestId}:${collection}`, storedAt);

/** A collection that failed: reported (backup.failed of its artifact) once the runner has decided for the command. */
interface CollectionFailure {
  readonly error: unknown;
  readonly report: (decision: FailureDecision) => Promise<void>;
}
type CollectionResult = 'done' | CollectionFailure;

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'snapshot';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const log = ctx.logger.child({ target: targetName, requestId });

  // A failure before any collection is known: one backup.failed without an artifact id.
  const failedCommand = (error: unknown): Outcome => backupFailed(error, { engine: 'qdrant', target: targetName, requestId, kind }, deps, log);

  if (!QDRANT_KINDS.includes(kind)) {
    return reject(new TidemarkError('COMMAND_INVALID', `kind: the qdrant agent makes "snapshot", "export" and "incremental" backups; "${kind}" is not one of them`));
  }
  const target = findTarget(deps.config, 'qdrant', targetName);
  if (!target) return unknownTarget(deps.config, 'qdrant', targetName);
  if (!target.qdrant) return failedCommand(new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no qdrant connection`));
  if (kind === 'incremental' && target.qdrant.incrementalField === undefined) {
    return failedCommand(new TidemarkError('COMMAND_INVALID', `incremental backups of target "${targetName}" need a payload timestamp field; set qdrant.incrementalField, or request kind "export"`));
  }
  const settings = effectiveTarget(deps.config, target);
  let key: KeyRing['current'];
  if (settings.encrypt) {
    key = deps.keys.current;
    if (!key) return failedCommand(new TidemarkError('CONFIG_INVALID', `target "${targetName}" requires encryption but no key is configured; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`));
  }

  const port = deps.portFor(target);
  let collections: string[];
  try {
    collections = [...new Set(message.collections ?? target.qdrant.collections ?? (await port.listCollections()))];
  } catch (error) {
    return failedCommand(error);
  }
  if (collections.length === 0) {
    return failedCommand(new TidemarkError('COMMAND_INVALID', `qdrant target "${targetName}" has no collections to back up; create one or name them in the command`));
  }

  const plan = { targetName, target, kind, requestId, settings, key, message, port };
  const failures: CollectionFailure[] = [];
  for (const collection of collections) {
    // Shutdown or a stall: the runner hands the command back or retries it; later collections wait for that.
    if (ctx.signal.aborted) break;
    const result = await backupCollection(collection, plan, deps, ctx);
    if (result !== 'done') failures.push(result);
  }
  if (ctx.signal.aborted) return failed(ctx.signal.reason, (decision) => reportAll(failures, decision));
  if (failures.length === 0) return ack();
  // A retryable failure of any collection retries the command: committed collections are only announced again.
  const decisive = failures.find((f) => retriesMayHelp(f.error)) ?? failures[0]!;
  return failed(decisive.error, (decision) => reportAll(failures, decision));
}

interface Plan {
  readonly targetName: string;
  readonly target: Target;
  readonly kind: ArtifactKind;
  readonly requestId: string;
  readonly settings: ReturnType<typeof effectiveTarget>;
  readonly key: KeyRing['current'];
  readonly message: RequestBackup;
  readonly port: QdrantPort;
}

async function reportAll(failures: readonly CollectionFailure[], decision: FailureDecision): Promise<void> {
  for (const failure of failures) await failure.report(decision);
}

async function backupCollection(collection: string, plan: Plan, deps: BackupDeps, ctx: Context): Promise<CollectionResult> {
  const artifactId = collectionArtifactId(plan.requestId, collection, ctx.storedAt);
  const log = ctx.logger.child({ target: plan.targetName, requestId: plan.requestId, collection, artifactId });
  const scope = eventScope('qdrant', plan.targetName, plan.requestId);
  let kind = plan.kind;

  const failed = (error: unknown): CollectionResult => {
    const cause = ctx.signal.aborted ? ctx.signal.reason : error;
    return {
      error: cause,
      report: async (decision) => {
        const { info, final } = await publishBackupFailed(cause, { engine: 'qdrant', target: plan.targetName, requestId: plan.requestId, kind, artifactId }, deps, decision);
        log.warn({ err: info, final }, 'backup of collection failed');
      },
    };
  };

  let parent: Manifest | undefined;
  try {
    const existing = await deps.store.readManifest('qdrant', plan.targetName, artifactId);
    if (existing) {
      log.info('artifact already committed, announcing it again');
      await announceArtifact('qdrant', existing, deps);
      return 'done';
    }
    if (kind === 'incremental') {
      parent = await findParent(deps, plan.targetName, collection, plan.target.qdrant?.incrementalField);
      if (!parent) {
        log.info('no earlier export of this collection: making a full export instead of an incremental');
        kind = 'export';
      }
    }
  } catch (error) {
    return failed(error);
  }

  const startedAt = deps.clock();
  await deps.publisher.publish(
    subjects.backupStarted('qdrant', plan.targetName),
    BackupStarted,
    { ...scope, occurredAt: startedAt.toISOString(), kind, artifactId, agentId: deps.agent.id, attempt: ctx.attempt },
    messageIds.backupStarted(artifactId, ctx.attempt),
  );
  log.info({ kind, parentId: parent?.id }, 'backup started');

  let manifest: Manifest;
  try {
    manifest = kind === 'snapshot'
      ? await snapshotAndStore(collection, { ...plan, artifactId, startedAt }, deps, ctx)
      : await exportAndStore(collection, { ...plan, kind, artifactId, startedAt, parent }, deps, ctx);
  } catch (error) {
    return failed(error);
  }
  await announceArtifact('qdrant', manifest, deps);
  log.info({ kind, storedBytes: manifest.data.storedBytes, rawBytes: manifest.data.rawBytes }, 'backup completed');
  return 'done';
}

/** The newest committed export or incremental of `collection` taken with the same timestamp field. */
async function findParent(deps: BackupDeps, target: string, collection: string, field: string | undefined): Promise<Manifest | undefined> {
  for (const manifest of await deps.store.listManifests({ engine: 'qdrant', target })) {
    if (manifest.kind !== 'export' && manifest.kind !== 'incremental') continue;
    const facts = qdrantFactsOf(manifest);
    if (facts.collection !== collection) continue;
    // The newest one decides: if it was taken without (or with another) timestamp field, its
    // high-water mark means nothing for this field, so a fresh full export starts a new chain.
    return facts.incremental?.field === field ? manifest : undefined;
  }
  return undefined;
}

interface StorePlan extends Plan {
  readonly artifactId: string;
  readonly startedAt: Date;
}

function encode(source: Readable, plan: StorePlan) {
  return encodeStream(source, {
    compression: plan.settings.compression ?? defaultCompression(),
    ...(plan.settings.compressionLevel !== undefined ? { compressionLevel: plan.settings.compressionLevel } : {}),
    ...(plan.key ? { key: plan.key } : {}),
  });
}

/** Streams `source` through the pipeline into the store; returns what the manifest needs. */
async function storeEncoded(read: Readable, plan: StorePlan, deps: BackupDeps, ctx: Context) {
  // Bytes read from qdrant are the backup's progress: a hung download stops them.
  const source = reportingBytes(read, (bytes) => ctx.progress(`read ${bytes} bytes from qdrant`));
  const encoded = encode(source, plan);
  source.once('error', (error) => encoded.output.destroy(error));
  try {
    const [saved, summary] = await settleFirstCause(
      [deps.store.saveData('qdrant', plan.targetName, plan.artifactId, encoded.output as Readable), encoded.summary] as const,
      // Stop reading from qdrant at the first failure; waiting for the other part must not hang.
      () => read.destroy(),
    );
    return { saved, summary };
  } catch (error) {
    // Stop reading from qdrant (an open snapshot download, an export's scroll) at once.
    read.destroy();
    source.destroy();
    encoded.output.destroy();
    throw error;
  }
}

function qdrantManifest(
  plan: StorePlan & { readonly kind: ArtifactKind; readonly format: string; readonly parentId?: string | undefined },
  source: QdrantSourceFacts,
  stored: Awaited<ReturnType<typeof storeEncoded>>,
  deps: BackupDeps,
): Manifest {
  return manifestOf(
    {
      engine: 'qdrant', target: plan.targetName, artifactId: plan.artifactId, kind: plan.kind, format: plan.format, requestId: plan.requestId,
      startedAt: plan.startedAt, source: QdrantSourceFacts.parse(source, 'source'), summary: stored.summary, dataKey: stored.saved.key,
      verify: plan.message.verify ?? plan.settings.verify, parentId: plan.parentId, message: plan.message,
    },
    deps,
  );
}

async function snapshotAndStore(collection: string, plan: StorePlan, deps: BackupDeps, ctx: Context): Promise<Manifest> {
  const facts = await collectFacts(plan.port, collection, SINGLE_NODE_COVERAGE);
  const outcome = await snapshotCollection(plan.port, {
    collection,
    store: (bytes) => storeEncoded(bytes, plan, deps, ctx),
    progress: (what) => ctx.progress(what),
    onCleanupError: (error, snapshot) => ctx.logger.error({ err: error, collection, snapshot }, 'could not delete the server-side snapshot; delete it by hand'),
  });
  const source: QdrantSourceFacts = {
    ...facts,
    snapshot: { name: outcome.snapshot.name, qdrantSha256: outcome.qdrantSha256, sha256: outcome.sha256, bytes: outcome.bytes },
  };
  const manifest = qdrantManifest({ ...plan, kind: 'snapshot', format: SNAPSHOT_FORMAT }, source, outcome.stored, deps);
  await deps.store.commit(manifest);
  return manifest;
}

async function exportAndStore(collection: string, plan: StorePlan & { readonly parent: Manifest | undefined }, deps: BackupDeps, ctx: Context): Promise<Manifest> {
  const includePayload = plan.message.includePayload ?? true;
  const field = plan.target.qdrant?.incrementalField;
  const facts = await collectFacts(plan.port, collection, EXPORT_COVERAGE, { includePayload });
  let parentData: Readable | undefined;
  let exported: ExportStream;
  let parentHighWater: unknown;
  if (plan.parent && field !== undefined) {
    const parentFacts = qdrantFactsOf(plan.parent);
    parentHighWater = parentFacts.incremental?.highWater;
    parentData = await openDecoded(deps.store, plan.parent, deps.keys);
    exported = exportDelta(plan.port, {
      collection, exportId: plan.artifactId, includePayload, incrementalField: field, parentExportId: plan.parent.id,
      parentHighWater, parentIds: readIdSet(parentData),
    });
  } else {
    exported = exportCollection(plan.port, { collection, exportId: plan.artifactId, includePayload, ...(field === undefined ? {} : { incrementalField: field }) });
  }
  try {
    const stored = await storeEncoded(exported.stream, plan, deps, ctx);
    const trailer = await exported.trailer;
    const source: QdrantSourceFacts = {
      ...facts,
      ...(field === undefined ? {} : { incremental: { field, ...(parentHighWater === undefined ? {} : { parentHighWater }), ...(trailer.highWater === undefined ? {} : { highWater: trailer.highWater }) } }),
    };
    const kind: ArtifactKind = plan.parent ? 'incremental' : 'export';
    const manifest = qdrantManifest({ ...plan, kind, format: EXPORT_FORMAT, parentId: plan.parent?.id }, source, stored, deps);
    await deps.store.commit(manifest);
    return manifest;
  } finally {
    exported.stream.destroy();
    parentData?.destroy();
  }
}
