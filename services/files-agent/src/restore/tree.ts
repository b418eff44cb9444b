// A committed files snapshot restored: the whole tree or chosen paths, into a directory (directory
// and ollama sources) or under a bucket and prefix (s3 sources). The default is a new directory,
// <files.workDir>/restores/<target>-<artifactId>; an existing non-empty directory needs
// `overwrite`, and the old tree is then moved aside until the restore has succeeded (restoreToDirectory).
import { isAbsolute, join, normalize } from 'node:path';
import { TidemarkError, type FilesSourceFacts, type Manifest, type RequestRestore, type RestoreCompleted } from '@tidemark/contracts';
import { filesSourceOf, type Target } from '@tidemark/config';
import { restoreToDirectory, restoreToS3, type RestoreSummary } from '@tidemark/files';
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
    for (const path of missing) if (entry.path === path || entry.path.startsWith(`${path}/`)) missing.delete(path);
    if (missing.size === 0) return;
  }
  const named = [...missing].slice(0, 10).map((p) => JSON.stringify(p)).join(', ');
  throw new TidemarkError('COMMAND_INVALID', `paths: ${named}${missing.size > 10 ? ', …' : ''} ${missing.size === 1 ? 'is' : 'are'} not in snapshot ${manifest.id}; list its tree with \`tidemark ls files ${manifest.target} ${manifest.id}\``);
}

/** Where the restore writes, checked against the snapshot's source kind. */
function destinationOf(message: RequestRestore, target: Target, manifest: Manifest, facts: FilesSourceFacts, deps: RestoreDeps) {
  if (facts.sourceKind === 's3') {
    if (message.intoDirectory !== undefined) throw new TidemarkError('COMMAND_INVALID', `intoDirectory: snapshot ${manifest.id} is of an s3 source and restores into a bucket; use intoBucket and intoPrefix`);
    const source = filesSourceOf(target);
    if (source.kind !== 's3') throw new TidemarkError('CONFIG_INVALID', `snapshot ${manifest.id} is of an s3 source, but target "${target.name}" now reads a ${source.kind} source; restore with a target configured for its bucket`);
    const prefix = message.intoPrefix === undefined ? `${source.prefix ?? ''}restore-${manifest.id}/` : message.intoPrefix === '' || message.intoPrefix.endsWith('/') ? message.intoPrefix : `${message.intoPrefix}/`;
    return { kind: 's3' as const, source, bucket: message.intoBucket ?? source.bucket, prefix };
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
    tree: () => committedTree(deps.store, manifest, deps.keys),
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
    // The default directory is named after the snapshot: what is there is an earlier restore of the same snapshot (an interrupted attempt), replaced safely.
    summary = await restoreToDirectory({ ...common, intoDirectory: destination.directory, overwrite: message.overwrite === true || destination.isDefault });
  }
  reporter.flush();
  if (summary.refused.length > 0) {
    const first = summary.refused.slice(0, 5).map((r) => `${JSON.stringify(r.path)} (${r.reason})`).join(', ');
    throw new TidemarkError(
      'RESTORE_PATH_REFUSED',
      `snapshot ${manifest.id} holds ${summary.refused.length} path(s) that would be written outside ${into} or cannot be created safely, and they were not written: ${first}${summary.refused.length > 5 ? ', …' : ''}; the rest was restored`,
    );
  }
  return { artifactId: manifest.id, into, startedAt, files: { files: summary.files, directories: summary.directories, symlinks: summary.symlinks, bytes: summary.bytes } };
}
