// A committed qdrant artifact restored into a collection.
//   snapshot            the decoded snapshot is uploaded (priority "snapshot", our sha256 as the
//                       checksum) and the restored points count is checked against the manifest
//   export/incremental  the chain is read from the bucket (following parentId) and restoreChain
//                       recreates the collection from the recorded config and upserts in batches
// The default target is a new `<collection>_restore_<yyyymmddhhmmss>`. Restoring over an existing
// collection needs `overwrite`; the data then goes into a staging collection first and the old
// collection is never touched: over an alias, the alias is switched to the restored collection
// (the old one is kept as it was); over a plain collection, which Qdrant can neither rename nor
// alias, the restored copy takes the name only once it matches the manifest, and the old data is
// first kept as a server-side snapshot (see verifyAndPromote). Either way the event's
// `previousDatabaseKeptAs` says where the old data is.
import { TidemarkError, type Manifest, type QdrantSourceFacts, type RequestRestore } from '@tidemark/contracts';
import type { Target } from '@tidemark/config';
import { openDecoded, type ArtifactStore } from '@tidemark/storage';
import { reportingBytes } from '@tidemark/runtime';
import {
  chainApplyOrder, compareWithFacts, promoteRestored, qdrantFactsOf, restoreChain, SNAPSHOT_FORMAT, stagingName, type QdrantPort, type RestoreOutcome,
} from '@tidemark/qdrant';
import { compactTimestamp, pickArtifactOf, publishRestoreStarted, type RestoreRun } from '@tidemark/agent';
import type { AgentDeps, Context } from '../agent-deps.js';

export type RestoreDeps = AgentDeps;

/**
 * The artifact to restore: the named one, else the newest verified one of `collection` (of any
 * collection when absent), else the newest one.
 */
export async function pickArtifact(store: ArtifactStore, target: string, artifactId: string | undefined, collection: string | undefined): Promise<Manifest> {
  if (collection === undefined) return pickArtifactOf(store, 'qdrant', target, artifactId);
  return pickArtifactOf(store, 'qdrant', target, artifactId, {
    keep: (m) => qdrantFactsOf(m).collection === collection,
    what: `collection ${collection} of qdrant target "${target}"`,
  });
}

/** Filled in as the restore goes; read when it fails. */
export interface RestoreProgress {
  artifactId?: string;
  collection?: string;
}

export interface RestoredCollection extends RestoreOutcome {
  readonly artifactId: string;
  readonly startedAt: Date;
}

/** Restores the command's artifact into its collection (restore.started on the way); throws what stopped it. */
export async function restoreCollection(
  message: RequestRestore, target: Target, run: RestoreRun, progress: RestoreProgress, deps: RestoreDeps, ctx: Context,
): Promise<RestoredCollection> {
  const log = ctx.logger;
  if (!target.qdrant) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no qdrant connection`);
  const port = deps.portFor(target);

  const startedAt = deps.clock();
  const manifest = await pickArtifact(deps.store, target.name, message.artifactId, message.collection);
  progress.artifactId = manifest.id;
  const facts = qdrantFactsOf(manifest);
  const intoDefault = message.intoCollection === undefined;
  const name = message.intoCollection ?? `${facts.collection}_restore_${compactTimestamp(ctx.storedAt)}`;
  progress.collection = name;

  let exists = await targetExists(port, name);
  if (exists && intoDefault) {
    // The default name derives from this command, so the collection is a leftover of an
    // interrupted earlier attempt of this very restore.
    log.warn({ collection: name }, 'deleting the leftover of an interrupted attempt');
    await port.deleteCollection(name);
    exists = false;
  }
  if (exists && !message.overwrite) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `qdrant collection ${name} exists; restore into another collection (intoCollection) or set overwrite: true (the old collection is kept until the restored one is verified)`);
  }
  await publishRestoreStarted(run, { artifactId: manifest.id, database: name, startedAt }, deps, ctx);
  log.info({ artifactId: manifest.id, kind: manifest.kind, collection: name, overwrite: exists }, 'restore started');

  let outcome = manifest.format === SNAPSHOT_FORMAT
    ? await restoreSnapshot(port, manifest, name, exists, deps, ctx)
    : await restoreExportChain(port, manifest, name, exists, deps, ctx);
  if (outcome.promotion === 'pending') outcome = await verifyAndPromote(port, name, outcome, facts);
  return { ...outcome, artifactId: manifest.id, startedAt };
}

/**
 * Over a plain collection: the restored copy must first match the manifest (count, sample
 * fingerprint, recorded queries); a mismatch removes it and leaves the old collection untouched.
 * Then the old collection is kept as a snapshot on the Qdrant server (the rollback point: recover
 * it to undo), deleted, and its name becomes an alias of the restored collection.
 */
async function verifyAndPromote(port: QdrantPort, name: string, outcome: RestoreOutcome, facts: QdrantSourceFacts): Promise<RestoreOutcome> {
  const differing = (await compareWithFacts(port, outcome.collection, facts)).filter((check) => !check.ok);
  if (differing.length > 0) {
    await port.deleteCollection(outcome.collection).catch(() => undefined);
    throw new TidemarkError(
      'VERIFY_MISMATCH',
      `the restored copy ${outcome.collection} differs from the artifact (${differing.map((c) => c.name).join(', ')}); it was removed and ${name} is untouched`,
    );
  }
  const kept = await port.createSnapshot(name);
  await promoteRestored(port, name, outcome.collection);
  return { ...outcome, previousKeptAs: `snapshot ${kept.name} of collection ${name}`, promotion: 'switched' };
}

/** A collection or an alias of that name. */
async function targetExists(port: QdrantPort, name: string): Promise<boolean> {
  if ((await port.listAliases()).some((a) => a.alias === name)) return true;
  return port.collectionExists(name);
}

async function restoreSnapshot(port: QdrantPort, manifest: Manifest, name: string, overwrite: boolean, deps: RestoreDeps, ctx: Context): Promise<RestoreOutcome> {
  const facts = qdrantFactsOf(manifest);
  if (!facts.snapshot) throw new TidemarkError('INTEGRITY_FORMAT', `snapshot artifact ${manifest.id} records no snapshot checksum; it was not written by the qdrant agent`);
  const alias = (await port.listAliases()).find((a) => a.alias === name)?.collection;
  const into = overwrite ? stagingName(name, deps.clock()) : name;
  if (await port.collectionExists(into)) throw new TidemarkError('RESTORE_TARGET_EXISTS', `qdrant collection ${into} exists; remove the leftover or retry later`);
  const decoded = await openDecoded(deps.store, manifest, deps.keys);
  try {
    // Bytes uploaded are the restore's progress: a hung upload stops them.
    await port.uploadSnapshot(into, reportingBytes(decoded, (bytes) => ctx.progress(`uploaded ${bytes} snapshot bytes`)), { checksum: facts.snapshot.sha256, priority: 'snapshot' });
    const count = await port.count(into);
    if (count !== facts.pointsCount) {
      throw new TidemarkError('VERIFY_MISMATCH', `the restored collection ${into} holds ${count} points, the manifest says ${facts.pointsCount}; it was removed, the old data is untouched`);
    }
  } catch (error) {
    // The rollback path: only the collection this restore created is removed.
    await port.deleteCollection(into).catch(() => undefined);
    throw error;
  } finally {
    decoded.destroy();
  }
  if (!overwrite) return { collection: into, points: facts.pointsCount, deleted: 0 };
  if (alias !== undefined) {
    await port.updateAliases([{ op: 'delete', alias: name }, { op: 'create', alias: name, collection: into }]);
    return { collection: into, points: facts.pointsCount, deleted: 0, previousKeptAs: alias, promotion: 'switched' };
  }
  return { collection: into, points: facts.pointsCount, deleted: 0, previousKeptAs: name, promotion: 'pending' };
}

async function restoreExportChain(port: QdrantPort, manifest: Manifest, name: string, overwrite: boolean, deps: RestoreDeps, ctx: Context): Promise<RestoreOutcome> {
  const manifests = new Map<string, Manifest>([[manifest.id, manifest]]);
  const chain = await chainApplyOrder(manifest.id, async (id) => {
    const link = manifests.get(id) ?? (await deps.store.readManifest('qdrant', manifest.target, id));
    if (link === undefined) return undefined;
    manifests.set(id, link);
    return { id: link.id, kind: link.kind, parentId: link.parentId };
  });
  ctx.logger.info({ artifactId: manifest.id, chain: chain.map((l) => l.id) }, 'restoring an export chain');
  return restoreChain(port, {
    collection: name,
    overwrite,
    links: chain.map((link) => () => openDecoded(deps.store, manifests.get(link.id)!, deps.keys)),
    clock: deps.clock,
    progress: () => ctx.progress('restored a batch of points'),
  });
}
