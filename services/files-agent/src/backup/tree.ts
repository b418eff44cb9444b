// One command's backup of a files target: the source walked against the parent snapshot (the
// newest committed one of the target), new chunks stored in the bucket's shared chunk repository,
// the tree streamed through the pipeline into storage, and the manifest written last: it commits
// the snapshot. Redeliveries of one command map to the same artifact id, so a snapshot already
// committed is only announced again.
import type { Readable } from 'node:stream';
import {
  BackupStarted, FilesSourceFacts, TidemarkError, messageIds, subjects, type Manifest, type RequestBackup,
} from '@tidemark/contracts';
import { effectiveTarget, type Target } from '@tidemark/config';
import { newArtifactId } from '@tidemark/storage';
import { defaultCompression, encodeStream, settleFirstCause, type KeyRing } from '@tidemark/pipeline';
import { reportingBytes } from '@tidemark/runtime';
import { openChunkRepository } from '@tidemark/chunks';
import { TREE_FORMAT, takeSnapshot, type FilesSource, type SnapshotResult } from '@tidemark/files';
import {
  announceArtifact, chunkKeyRing, committedTree, eventScope, filesFactsOf, jobProgress, manifestOf, type CompletedProblems,
} from '@tidemark/agent';
import type { AgentDeps, Context } from '../agent-deps.js';

export type BackupDeps = AgentDeps;

/** The artifact id of one command: stable across redeliveries. */
export const treeArtifactId = (requestId: string, storedAt: Date): string => newArtifactId(requestId, storedAt);

/** backup.completed names at most this many problems (the manifest keeps the first 1000). */
const PROBLEMS_ANNOUNCED = 20;
const DETAIL_CHARS = 500;

/** What backup.completed says about the paths a snapshot could not store as they were. */
export function completedProblems(manifest: Manifest): CompletedProblems {
  const facts = filesFactsOf(manifest);
  if (facts.problemsCount === 0) return { problemsCount: 0 };
  return {
    problemsCount: facts.problemsCount,
    problems: facts.problems.slice(0, PROBLEMS_ANNOUNCED).map((p) => ({ path: p.path, problem: p.problem, ...(p.detail === undefined ? {} : { detail: p.detail.slice(0, DETAIL_CHARS) }) })),
  };
}

export const announceSnapshot = (manifest: Manifest, deps: BackupDeps): Promise<void> => announceArtifact('files', manifest, deps, completedProblems(manifest));

export interface Plan {
  readonly target: Target;
  readonly requestId: string;
  readonly artifactId: string;
  readonly settings: ReturnType<typeof effectiveTarget>;
  readonly key: KeyRing['current'];
  readonly message: RequestBackup;
  readonly source: FilesSource;
}

/** What the command backs up, and how; throws when the target's settings do not allow it. */
export function planBackup(message: RequestBackup, target: Target, requestId: string, deps: BackupDeps, ctx: Context): Plan {
  if (!target.files) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no files source; set files.source`);
  const settings = effectiveTarget(deps.config, target);
  let key: KeyRing['current'];
  if (settings.encrypt) {
    key = deps.keys.current;
    if (!key) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" requires encryption but no key is configured; set TIDEMARK_ENCRYPTION_KEY or TIDEMARK_ENCRYPTION_KEY_FILE`);
  }
  return { target, requestId, artifactId: treeArtifactId(requestId, ctx.storedAt), settings, key, message, source: deps.sourceFor(target) };
}

/** The newest committed snapshot of the target: the parent whose unchanged files are not read again. */
export async function findParent(deps: BackupDeps, target: string): Promise<Manifest | undefined> {
  return (await deps.store.listManifests({ engine: 'files', target })).find((m) => m.format === TREE_FORMAT);
}

/** backup.started, then the snapshot stored and committed. Returns the committed manifest. */
export async function backupTree(plan: Plan, deps: BackupDeps, ctx: Context): Promise<Manifest> {
  const { target, artifactId } = plan;
  const parent = await findParent(deps, target.name);
  const parentFacts = parent && filesFactsOf(parent);
  const repository = await openChunkRepository({
    backend: deps.store.backend,
    keyRing: chunkKeyRing(deps.keys, plan.key !== undefined),
    compression: plan.settings.compression ?? defaultCompression(),
    ...(plan.settings.compressionLevel === undefined ? {} : { compressionLevel: plan.settings.compressionLevel }),
  });

  const startedAt = deps.clock();
  await deps.publisher.publish(
    subjects.backupStarted('files', target.name),
    BackupStarted,
    { ...eventScope('files', target.name, plan.requestId), occurredAt: startedAt.toISOString(), kind: 'tree', artifactId, agentId: deps.agent.id, attempt: ctx.attempt },
    messageIds.backupStarted(artifactId, ctx.attempt),
  );
  const fullRehash = plan.message.fullRehash === true;
  ctx.logger.info({ artifactId, parentId: parent?.id, source: plan.source.location, fullRehash }, 'backup started');

  const progress = jobProgress({
    publisher: deps.progress, action: 'backup', engine: 'files', target: target.name, requestId: plan.requestId, artifactId,
    totals: { files: parentFacts?.files, bytes: parentFacts?.totalBytes }, clock: deps.clock, onMove: (what) => ctx.progress(what),
    ...(deps.progressIntervalMs === undefined ? {} : { intervalMs: deps.progressIntervalMs }),
  });
  const parentTree = parent && committedTree(deps.store, parent, deps.keys, { repository });
  let snapshot: SnapshotResult | undefined;
  try {
    snapshot = takeSnapshot({
      source: plan.source,
      repository,
      sessionId: artifactId,
      ...(parentTree ? { parentTree } : {}),
      fullRehash,
      strict: target.files?.strict ?? false,
      ...(target.files?.concurrency === undefined ? {} : { concurrency: target.files.concurrency }),
      onProgress: (p) => progress.update(p),
      signal: ctx.signal,
    });
    const stored = await storeTree(snapshot, plan, deps, ctx);
    progress.flush();
    const manifest = manifestOf(
      {
        engine: 'files', target: target.name, artifactId, kind: 'tree', format: TREE_FORMAT, requestId: plan.requestId, startedAt,
        source: FilesSourceFacts.parse(stored.facts, 'source'), summary: stored.summary, dataKey: stored.saved.key,
        verify: plan.message.verify ?? plan.settings.verify, parentId: parent?.id, message: plan.message,
      },
      deps,
    );
    await deps.store.commit(manifest);
    return manifest;
  } finally {
    // After the commit or the failure: the garbage collector may now judge this session's packs.
    await snapshot?.close().catch((error: unknown) => ctx.logger.warn({ err: error, artifactId }, 'could not remove the chunk session marker; the collector treats it as stale later'));
    await parentTree?.return(undefined);
  }
}

/** The tree through the pipeline into storage; the facts once every chunk and the index are flushed. */
async function storeTree(snapshot: SnapshotResult, plan: Plan, deps: BackupDeps, ctx: Context) {
  // Tree bytes are progress too: a long run of unchanged files moves no content.
  const tree = reportingBytes(snapshot.tree, () => ctx.progress('tree written'));
  const encoded = encodeStream(tree, {
    compression: plan.settings.compression ?? defaultCompression(),
    ...(plan.settings.compressionLevel === undefined ? {} : { compressionLevel: plan.settings.compressionLevel }),
    ...(plan.key ? { key: plan.key } : {}),
  });
  tree.once('error', (error) => encoded.output.destroy(error));
  try {
    const [saved, summary, facts] = await settleFirstCause(
      [deps.store.saveData('files', plan.target.name, plan.artifactId, encoded.output as Readable), encoded.summary, snapshot.facts] as const,
      () => snapshot.tree.destroy(),
    );
    return { saved, summary, facts };
  } catch (error) {
    snapshot.tree.destroy();
    tree.destroy();
    encoded.output.destroy();
    throw error;
  }
}
