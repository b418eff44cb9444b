// A committed files snapshot restored: the whole tree or chosen paths, into a directory (directory
// and ollama sources) or under a bucket and prefix (s3 sources). The default is a new directory,
// <files.workDir>/restores/<target>-<artifactId>; an existing non-empty directory needs
// `overwrite`, and the old tree is then moved aside until the restore has succeeded (restoreToDirectory).
import { isAbsolute, join, normalize } from 'node:path';
import { TidemarkError, type FilesSourceFacts, type Manifest, type RequestRestore, type RestoreCompleted } from '@tidemark/contracts';
import { filesSourceOf, type Target } from '@tidemark/config';
import { compareDirectoryWithTree, restoreToDirectory, restoreToS3, type RestoreSummary, type TreeEntry } from '@tidemark/files';
import { committedTree, filesFactsOf, jobProgress, pickArtifactOf, publishRestoreStarted, repositoryFor, type RestoreRun } from '@tidemark/agent';
import type { AgentDeps, Context } from '../agent-deps.js';

export type RestoreDeps = AgentDeps;

/** Filled in as the restore goes; read when it fails. */
export interface RestoreProgress {
  artifactId?: string;
  /** The directory, or s3://bucket/prefix. */
  into?: string;
}

export interface RestoredTree {
  readonly artifactId: string;
  readonly into: string;
  readonly startedAt: Date;
  readonly files: NonNullable<RestoreCompleted['files']>;
}

/** The request's paths, checked: relative, '/'-separated, no '.' or '..' segments, no NUL. */
export function checkedPaths(paths: readonly string[] | undefined): string[] | undefined {
  if (paths === undefined) return undefined;
  return paths.map((raw, i) => {
    const path = raw.replace(/\/+$/, '');
    const refused = path.includes('\0') ? 'holds a NUL byte'
      : path.startsWith('/') ? 'is absolute; paths are relative to the snapshot root'
      : path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..') ? "has an empty, '.' or '..' segment"
      : undefined;
    if (refused) throw new TidemarkError('COMMAND_INVALID', `paths[${i}]: ${JSON.stringify(raw)} ${refused}`);
    return path;
  });
}

/** Reads the tree once and fails, naming them, when some requested paths are not in the snapshot. */
async function requirePathsInTree(paths: readonly string[], manifest: Manifest, deps: RestoreDeps): Promise<void> {
  const missing = new Set(paths);
  for await (const entry of committedTree(deps.store, manifest, deps.keys)) {
    for (const path of missing) if (inPaths(entry.path, [path])) missing.delete(path);
    if (missing.size === 0) return;
  }
  const named = [...missing].slice(0, 10).map((p) => JSON.stringify(p)).join(', ');
  throw new TidemarkError('COMMAND_INVALID', `paths: ${named}${missing.size > 10 ? ', …' : ''} ${missing.size === 1 ? 'is' : 'are'} not in snapshot ${manifest.id}; list its tree with \`tidemark ls files ${manifest.target} ${manifest.id}\``);
}

const inPaths = (path: string, paths: readonly string[] | undefined): boolean => paths === undefined || paths.some((p) => path === p || path.startsWith(`${p}/`));

/**
 * A redelivered restore whose first delivery finished (its ack was lost) finds its directory
 * occupied: when the directory holds exactly the snapshot (or its chosen paths), the restore is
 * done and is announced again instead of failing. Undefined when it holds anything else.
 */
async function alreadyRestored(directory: string, manifest: Manifest, paths: readonly string[] | undefined, deps: RestoreDeps): Promise<RestoreSummary | undefined> {
  const counts = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  async function* counted(): AsyncGenerator<TreeEntry> {
    for await (const entry of committedTree(deps.store, manifest, deps.keys)) {
      if (inPaths(entry.path, paths) && entry.problem === undefined) {
        if (entry.type === 'dir') counts.directories += 1;
        else if (entry.type === 'symlink') counts.symlinks += 1;
        else {
          counts.files += 1;
          counts.bytes += entry.size;
        }
      }
      yield entry;
    }
  }
  const comparison = await compareDirectoryWithTree(directory, counted(), paths === undefined ? {} : { paths });
  return comparison.ok ? { ...counts, refused: [] } : undefined;
}

/**
 * The key prefix an s3 restore writes under. The default is a sibling of the source prefix
 * ("docs/" → "docs-restore-<id>/"), never inside it: the next backup would take the restored copy in.
 * `sourcePrefix` is the source's prefix when restoring into the source's own bucket.
 */
function s3RestorePrefix(requested: string | undefined, sourcePrefix: string | undefined, artifactId: string): string {
  if (requested !== undefined) return requested === '' || requested.endsWith('/') ? requested : `${requested}/`;
  if (sourcePrefix === undefined) return `restore-${artifactId}/`;
  const base = sourcePrefix.replace(/\/+$/, '');
  if (base === '') {
    throw new TidemarkError('COMMAND_INVALID', 'intoPrefix: the source is its whole bucket, so a restore into it needs intoPrefix (or intoBucket, another bucket): a default prefix inside the source would be backed up again');
  }
  return `${base}-restore-${artifactId}/`;
}

/** Where the restore writes, checked against the snapshot's source kind. */
function destinationOf(message: RequestRestore, target: Target, manifest: Manifest, facts: FilesSourceFacts, deps: RestoreDeps) {
  if (facts.sourceKind === 's3') {
    if (message.intoDirectory !== undefined) throw new TidemarkError('COMMAND_INVALID', `intoDirectory: snapshot ${manifest.id} is of an s3 source and restores into a bucket; use intoBucket and intoPrefix`);
    const source = filesSourceOf(target);
    if (source.kind !== 's3') throw new TidemarkError('CONFIG_INVALID', `snapshot ${manifest.id} is of an s3 source, but target "${target.name}" now reads a ${source.kind} source; restore with a target configured for its bucket`);
    const bucket = message.intoBucket ?? source.bucket;
    return { kind: 's3' as const, source, bucket, prefix: s3RestorePrefix(message.intoPrefix, bucket === source.bucket ? (source.prefix ?? '') : undefined, manifest.id) };
  }
  if (message.intoBucket !== undefined || message.intoPrefix !== undefined) {
    throw new TidemarkError('COMMAND_INVALID', `intoBucket/intoPrefix: snapshot ${manifest.id} is of a ${facts.sourceKind} source and restores into a directory; use intoDirectory`);
  }
  const explicit = message.intoDirectory;
  if (explicit !== undefined && (!isAbsolute(explicit) || explicit.includes('\0'))) {
    throw new TidemarkError('COMMAND_INVALID', `intoDirectory: ${JSON.stringify(explicit)} is not an absolute directory path`);
  }
  const directory = explicit === undefined ? join(deps.config.files.workDir, 'restores', `${target.name}-${manifest.id}`) : normalize(explicit);
  return { kind: 'directory' as const, directory, isDefault: explicit === undefined };
}

/** Restores the command's snapshot (restore.started on the way); throws what stopped it. */
export async function restoreTree(message: RequestRestore, target: Target, run: RestoreRun, progress: RestoreProgress, deps: RestoreDeps, ctx: Context): Promise<RestoredTree> {
  if (!target.files) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no files source; set files.source`);
  const paths = checkedPaths(message.paths);
  const startedAt = deps.clock();
  const manifest = await pickArtifactOf(deps.store, 'files', target.name, message.artifactId);
  progress.artifactId = manifest.id;
  const facts = filesFactsOf(manifest);
  const destination = destinationOf(message, target, manifest, facts, deps);
  const into = destination.kind === 's3' ? `s3://${destination.bucket}/${destination.prefix}` : destination.directory;
  progress.into = into;
  if (paths !== undefined) await requirePathsInTree(paths, manifest, deps);

  await publishRestoreStarted(run, { artifactId: manifest.id, database: into, startedAt }, deps, ctx);
  ctx.logger.info({ artifactId: manifest.id, into, paths: paths?.slice(0, 10), overwrite: message.overwrite === true }, 'restore started');

  const repository = await repositoryFor(deps.store.backend, deps.keys, manifest);
  const reporter = jobProgress({
    publisher: deps.progress, action: 'restore', engine: 'files', target: target.name, requestId: run.requestId, artifactId: manifest.id,
    // With chosen paths the totals are unknown: the snapshot's would promise too much.
    ...(paths === undefined ? { totals: { files: facts.files, bytes: facts.totalBytes } } : {}),
    clock: deps.clock, onMove: (what) => ctx.progress(what),
    ...(deps.progressIntervalMs === undefined ? {} : { intervalMs: deps.progressIntervalMs }),
  });
  const common = {
    tree: () => committedTree(deps.store, manifest, deps.keys, { repository }),
    repository,
    ...(paths === undefined ? {} : { paths }),
    concurrency: deps.config.files.restoreConcurrency,
    onProgress: (p: { filesDone: number; bytesDone: number; current?: string | undefined }) => reporter.update(p),
    signal: ctx.signal,
  };
  let summary: RestoreSummary;
  if (destination.kind === 's3') {
    const { source, bucket, prefix } = destination;
    summary = await restoreToS3({
      ...common, endpoint: source.endpoint, ...(source.region === undefined ? {} : { region: source.region }), accessKey: source.accessKey, secretKey: source.secretKey,
      bucket, prefix, ...(message.overwrite === undefined ? {} : { overwrite: message.overwrite }),
    });
  } else {
    // Entries that would land outside the directory are refused by the restore itself (RESTORE_PATH_REFUSED, naming them).
    // The default directory is named after the snapshot: what is there is an earlier restore of the same snapshot (an interrupted attempt), replaced safely.
    const overwrite = message.overwrite === true || destination.isDefault;
    try {
      summary = await restoreToDirectory({ ...common, intoDirectory: destination.directory, overwrite });
    } catch (error) {
      const done = error instanceof TidemarkError && error.code === 'RESTORE_TARGET_EXISTS' ? await alreadyRestored(destination.directory, manifest, paths, deps) : undefined;
      if (!done) throw error;
      ctx.logger.info({ into }, 'the directory already holds this snapshot (a redelivery of a finished restore): announcing it again');
      summary = done;
    }
  }
  reporter.flush();
  return { artifactId: manifest.id, into, startedAt, files: { files: summary.files, directories: summary.directories, symlinks: summary.symlinks, bytes: summary.bytes } };
}
