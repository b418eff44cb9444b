// Proves a files snapshot by restoring it into a scratch directory (<files.workDir>/scratch/…) and
// comparing that directory, by an independent walk, with the tree the manifest commits: paths,
// types, modes, sizes, sha256 and link targets (owners when running as root). For an Ollama
// store, every restored blob is also hashed against its name and every manifest's layers must be
// there. A chunk that cannot be read back as stored (a flipped byte in a pack) is a mismatch named
// by its integrity code. The scratch directory is always removed.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TidemarkError, type FilesSourceFacts, type Manifest, type VerificationCheck } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import { compareDirectoryWithTree, inspectOllamaStore, restoreToDirectory, type RestoreSummary, type TreeComparison, type TreeEntry } from '@tidemark/files';
import { committedTree, filesFactsOf, repositoryFor } from '@tidemark/agent';
import { claimScratchDirectory, releaseScratchDirectory } from './scratch.js';

export interface FilesVerifyDeps {
  readonly store: ArtifactStore;
  readonly keys: KeyRing;
}

export interface FilesVerifyProgress {
  readonly progress: (what?: string) => void;
  readonly signal?: AbortSignal;
  /** Random suffix of the scratch directory's name. */
  readonly suffix: string;
  readonly onCleanupError?: (error: unknown, dir: string) => void;
}

/** <files.workDir>/scratch: swept of dead verifiers' directories at start. */
export const filesScratchRoot = (workDir: string): string => join(workDir, 'scratch');

const isRoot = (): boolean => process.getuid?.() === 0;
const DIFFERENCES_SHOWN = 5;

/** A chunk or tree that does not read back as stored is what verification exists to find: a mismatch, not an error to retry. */
function asMismatch(error: unknown, manifest: Manifest): never {
  if (error instanceof TidemarkError && error.code.startsWith('INTEGRITY_')) {
    throw new TidemarkError('VERIFY_MISMATCH', `files snapshot ${manifest.id} cannot be read back as stored (${error.code}): ${error.message}`, { cause: error });
  }
  throw error;
}

export async function verifyFilesArtifact(manifest: Manifest, workDir: string, deps: FilesVerifyDeps, progress: FilesVerifyProgress): Promise<VerificationCheck[]> {
  const facts = filesFactsOf(manifest);
  const root = filesScratchRoot(workDir);
  const dir = join(root, `${manifest.id}-${progress.suffix}`);
  await mkdir(root, { recursive: true, mode: 0o700 });
  await claimScratchDirectory(dir);
  try {
    let restored: RestoreSummary;
    let comparison: TreeComparison;
    try {
      const repository = await repositoryFor(deps.store.backend, deps.keys, manifest);
      const tree = () => committedTree(deps.store, manifest, deps.keys, { repository });
      restored = await restoreToDirectory({
        tree, repository, intoDirectory: dir, owners: isRoot(),
        onProgress: (p) => progress.progress(`restored ${p.filesDone} files, ${p.bytesDone} bytes`),
        ...(progress.signal ? { signal: progress.signal } : {}),
      });
      // The compare hashes every file again: each entry it takes counts as progress for the stall watchdog.
      comparison = await compareDirectoryWithTree(dir, reportingProgress(tree(), progress), { owners: isRoot() });
    } catch (error) {
      asMismatch(error, manifest);
    }
    const checks = [restoredCheck(restored), treeCheck(comparison), backupProblemsCheck(facts)];
    if (facts.sourceKind === 'ollama') checks.push(...(await ollamaChecks(dir, facts, progress)));
    return checks;
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 })
      .then(() => releaseScratchDirectory(dir))
      .catch((error: unknown) => progress.onCleanupError?.(error, dir));
  }
}

async function* reportingProgress(entries: AsyncIterable<TreeEntry>, progress: FilesVerifyProgress): AsyncGenerator<TreeEntry> {
  let compared = 0;
  for await (const entry of entries) {
    yield entry;
    progress.progress(`compared ${++compared} entries`);
  }
}

/** A refused entry (outside the scratch directory) already failed the restore with RESTORE_PATH_REFUSED. */
function restoredCheck(summary: RestoreSummary): VerificationCheck {
  const skipped = summary.skipped?.length ?? 0;
  return {
    name: 'files restored (confined to the scratch directory)',
    ok: true,
    detail: `${summary.files} files, ${summary.directories} directories, ${summary.symlinks} symlinks, ${summary.bytes} bytes${skipped > 0 ? `; ${skipped} not stored as good at backup, skipped` : ''}`,
  };
}

function treeCheck(comparison: TreeComparison): VerificationCheck {
  const shown = comparison.differences.slice(0, DIFFERENCES_SHOWN).map((d) => `${JSON.stringify(d.path)} ${d.field}${d.expected === undefined ? '' : ` expected ${JSON.stringify(d.expected)}`}${d.actual === undefined ? '' : ` got ${JSON.stringify(d.actual)}`}`).join('; ');
  return {
    name: 'restored tree matches the manifest (paths, types, modes, sizes, sha256, link targets)',
    ok: comparison.ok,
    detail: `${comparison.filesCompared} files, ${comparison.bytesCompared} bytes compared${comparison.differenceCount > 0 ? `; ${comparison.differenceCount} difference(s): ${shown}` : ''}`,
  };
}

/** What the backup itself reported (unreadable, changed while read, corrupt): known, so it does not fail verification. */
function backupProblemsCheck(facts: FilesSourceFacts): VerificationCheck {
  const first = facts.problems.slice(0, DIFFERENCES_SHOWN).map((p) => `${JSON.stringify(p.path)} ${p.problem}`).join(', ');
  return { name: 'problems recorded at backup', ok: true, detail: facts.problemsCount === 0 ? 'none' : `${facts.problemsCount}: ${first}${facts.problemsCount > DIFFERENCES_SHOWN ? ', …' : ''}` };
}

const DIGEST_HEX = /sha256[-:]([0-9a-f]{64})/;

/** Layers the backup already knew it could not store: blobs corrupt at backup, and layers the source itself lacked. */
function layersMissingAtBackup(facts: FilesSourceFacts): Set<string> {
  const known = [...(facts.ollama?.corruptBlobs ?? []), ...facts.problems.filter((p) => p.problem === 'missing_layer').map((p) => p.detail ?? '')];
  return new Set(known.map((text) => DIGEST_HEX.exec(text)?.[1]).filter((hex): hex is string => hex !== undefined));
}

/**
 * Every restored blob hashes to its name, and every model's layers are there. A layer the backup
 * already reported (its blob corrupt, or absent from the source) is named and does not fail the
 * verification: the snapshot holds what its manifest says. Any other missing layer does.
 */
async function ollamaChecks(dir: string, facts: FilesSourceFacts, progress: FilesVerifyProgress): Promise<VerificationCheck[]> {
  const inspection = await inspectOllamaStore(dir, { hashBlobs: true, onBlobHashed: (name) => progress.progress(`hashed blob ${name}`) });
  const knownAtBackup = layersMissingAtBackup(facts);
  const isKnown = (missing: { digest: string }) => knownAtBackup.has(DIGEST_HEX.exec(missing.digest)?.[1] ?? '');
  const unexpected = inspection.missingLayers.filter((m) => !isKnown(m));
  const known = inspection.missingLayers.filter(isKnown);
  const named = (missing: typeof inspection.missingLayers) => missing.slice(0, DIFFERENCES_SHOWN).map((m) => `model ${m.model} lacks layer ${m.digest}`).join('; ');
  return [
    {
      name: 'ollama blobs match their digests',
      ok: inspection.corruptBlobs.length === 0,
      detail: `${inspection.blobs} blobs hashed${inspection.corruptBlobs.length > 0 ? `; corrupt: ${inspection.corruptBlobs.slice(0, DIFFERENCES_SHOWN).join(', ')}` : ''}`,
    },
    {
      name: 'ollama models have every layer',
      ok: unexpected.length === 0,
      detail: `${inspection.models.length} models`
        + (unexpected.length > 0 ? `; missing: ${named(unexpected)}` : '')
        + (known.length > 0 ? `; missing as reported at backup (corrupt or absent in the source): ${named(known)}` : ''),
    },
  ];
}
