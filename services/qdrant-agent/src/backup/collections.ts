// One command's backup of a qdrant target: the plan (the target's settings, the key, the collections
// to back up), then one artifact per collection, streamed through the pipeline into storage and
// committed by its manifest, written last. Redeliveries of one command map to the same artifact ids,
// so a collection whose artifact is already committed is only announced again.
//   snapshot     a Qdrant collection snapshot (created with wait=true, deleted server-side
//                afterwards in every case, failures included)
//   export       the portable logical export (qdrant-export-v1)
//   incremental  a delta against the newest export/incremental of the same collection; without
//                one, a full export is made instead (kind "export")
import type { Readable } from 'node:stream';
import {
  BackupStarted, QdrantSourceFacts, TidemarkError, messageIds, subjects, type ArtifactKind, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, type Target } from '@tidemark/config';
import { newArtifactId, openDecoded } from '@tidemark/storage';
import { defaultCompression, encodeStream, settleFirstCause, type KeyRing } from '@tidemark/pipeline';
import { reportingBytes, type FailureDecision } from '@tidemark/runtime';
import {
  collectFacts, exportCollection, exportDelta, qdrantFactsOf, readIdSet, snapshotCollection, EXPORT_COVERAGE, EXPORT_FORMAT, SINGLE_NODE_COVERAGE,
  SNAPSHOT_FORMAT, type ExportStream, type QdrantPort,
} from '@tidemark/qdrant';
import { announceArtifact, eventScope, manifestOf, publishBackupFailed } from '@tidemark/agent';
import type { AgentDeps, Context } from '../agent-deps.js';

export type BackupDeps = AgentDeps;

/** The artifact id of one collection of one command: stable across redeliveries. */
export const collectionArtifactId = (requestId: string, collection: string, storedAt: Date): string => newArtifactId(`${requestId}:${collection}`, storedAt);

/** A collection that failed: reported (backup.failed of its artifact) once the runner has decided for the command. */
export interface CollectionFailure {
  readonly error: unknown;
  readonly report: (decision: FailureDecision) => Promise<void>;
}
export type CollectionResult = 'done' | CollectionFailure;

export interface Plan {
  readonly targetName: string;
  readonly target: Target;
  readonly kind: ArtifactKind;
  readonly requestId: string;
  readonly settings: ReturnType<typeof effectiveTarget>;
  readonly key: KeyRing['current'];
  readonly message: RequestBackup;
  readonly port: QdrantPort;
  readonly collections: readonly string[];
}

/** What the command backs up, and how; throws when the target's settings or the command do not allow it. */
export async function planBackup(message: RequestBackup, target: Target, kind: ArtifactKind, requestId: string, deps: BackupDeps): Promise<Plan> {
  const targetName = target.name;
  if (!target.qdrant) throw new TidemarkError('CONFIG_INVALID', `target "${targetName}" has no qdrant connection`);
  if (kind === 'incremental' && target.qdrant.incrementalField === undefined) {
    throw new TidemarkError('COMMAND_INVALID', `incremental backups of target "${targetName}" need a payload timestamp field; set qdrant.incrementalField, or request kind "export"`);
  }
  const settings = effectiveTarget(deps.config, target);
  let key: KeyRing['current'];
  if (settings.encrypt) {
    key = deps.keys.current;
    if (!key) throw new TidemarkError('CONFIG_INVALID', `target "${targetName}" requires encryption but no key is configured; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`);
  }
  const port = deps.portFor(target);
  const collections = [...new Set(message.collections ?? target.qdrant.collections ?? (await port.listCollections()))];
  if (collections.length === 0) {
    throw new TidemarkError('COMMAND_INVALID', `qdrant target "${targetName}" has no collections to back up; create one or name them in the command`);
  }
  return { targetName, target, kind, requestId, settings, key, message, port, collections };
}

/** Reports each failed collection (backup.failed of its artifact) as the runner decided for the command. */
export async function reportAll(failures: readonly CollectionFailure[], decision: FailureDecision): Promise<void> {
  for (const failure of failures) await failure.report(decision);
}

/** Backs up one collection of the plan (backup.started, then artifact.stored + backup.completed). */
export async function backupCollection(collection: string, plan: Plan, deps: BackupDeps, ctx: Context): Promise<CollectionResult> {
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
