// artifact.stored.<engine>.<target>: prove an artifact by restoring it into scratch space and
// comparing with the manifest's facts: a pg dump into a scratch database of the sandbox, a pg base
// backup into a scratch data directory started by the verifier itself (see ../pg-base-verify.ts),
// a Qdrant artifact into a scratch collection (see ../qdrant-verify.ts), a files snapshot into a
// scratch directory (see ../files-verify.ts). The event is only a hint:
// the manifest in the bucket is what gets verified. The scratch space is always removed.
import { randomBytes } from 'node:crypto';
import {
  SCHEMA_VERSION, TidemarkError, VerifyFailed, VerifyPassed, messageIds, subjects,
  type ArtifactStored, type ErrorInfo, type Manifest, type PgSourceFacts, type VerificationCheck, type VerificationRecord,
} from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import { ack, failed, type EventPublisher, type HandlerContext, type Logger, type Outcome } from '@tidemark/runtime';
import { restoreArtifact, type PgCluster } from '@tidemark/pg';
import { failureOf } from '@tidemark/agent';
import type { QdrantPort } from '@tidemark/qdrant';
import { compareFacts, probeKOf } from '../compare.js';
import { verifyPgBaseArtifact, type PgBaseVerifySettings } from '../pg-base-verify.js';
import { verifyQdrantArtifact } from '../qdrant-verify.js';
import { verifyFilesArtifact } from '../files-verify.js';
import { SCRATCH_PREFIX, type ScratchDatabaseClaims } from '../scratch.js';

export interface VerifierDeps {
  readonly store: ArtifactStore;
  /** The sandbox cluster (config `sandbox.postgres`); undefined when not configured. */
  readonly sandbox: PgCluster | undefined;
  /** The sandbox Qdrant (config `sandbox.qdrant`, guarded); undefined when not configured. */
  readonly sandboxQdrant?: QdrantPort | undefined;
  readonly publisher: EventPublisher;
  readonly keys: KeyRing;
  readonly clock: () => Date;
  /** Where and how base backups (kind "base") are started (config `pg`); undefined: they fail with CONFIG_INVALID. */
  readonly pgBase?: PgBaseVerifySettings | undefined;
  /** config `files.workDir`: files snapshots are restored below its scratch/; undefined: they fail with CONFIG_INVALID. */
  readonly filesWorkDir?: string | undefined;
  /** Random suffix for scratch database, collection and directory names. */
  readonly randomSuffix?: () => string;
  /** Claims on the sandbox's scratch databases, so a starting verifier can tell a dead one's leftovers (see ../scratch.ts). */
  readonly scratchClaims?: ScratchDatabaseClaims | undefined;
}

type Context = Pick<HandlerContext, 'attempt' | 'maxDeliver' | 'progress' | 'signal' | 'logger'>;

export function scratchDatabaseName(artifactId: string, suffix: string): string {
  const short = (artifactId.split('-').pop() ?? artifactId).toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 16);
  return `${SCRATCH_PREFIX}${short}_${suffix}`;
}

/** Qdrant scratch collections follow the same pattern: `tidemark_verify_<short>_<random>`. */
export const scratchCollectionName = scratchDatabaseName;

const VERIFIABLE: ReadonlySet<string> = new Set(['pg', 'qdrant', 'files']);

export async function handleArtifactStored(event: ArtifactStored, deps: VerifierDeps, ctx: Context): Promise<Outcome> {
  const log = ctx.logger.child({ engine: event.engine, target: event.target, artifactId: event.artifactId });
  if (!event.verify || !VERIFIABLE.has(event.engine)) {
    log.debug('verification not requested for this artifact (or not a pg, qdrant or files artifact); skipping');
    return ack();
  }
  const manifest = await deps.store.readManifest(event.engine, event.target, event.artifactId);
  if (!manifest) {
    return failed(new TidemarkError('ARTIFACT_NOT_FOUND', `the announced artifact ${event.artifactId} of ${event.engine}/${event.target} has no committed manifest; nothing to verify`));
  }
  if (!manifest.verify) return ack();

  const startedAt = deps.clock();
  let checks: VerificationCheck[];
  let failure: ErrorInfo | undefined;
  try {
    checks =
      manifest.engine === 'qdrant' ? await verifyQdrant(manifest, deps, ctx)
      : manifest.engine === 'files' ? await verifyFiles(manifest, deps, ctx)
      : manifest.kind === 'base' ? await verifyPgBase(manifest, deps, ctx)
      : await verifyPgArtifact(manifest, deps, ctx);
    const differing = checks.filter((c) => !c.ok);
    if (differing.length > 0) {
      const names = differing.slice(0, 10).map((c) => c.name).join(', ');
      failure = new TidemarkError('VERIFY_MISMATCH', `the restored copy differs from the backup in ${differing.length} check(s): ${names}${differing.length > 10 ? ', …' : ''}`).toInfo();
    }
  } catch (error) {
    // The runner decides whether this was the last try; only then does the artifact get a failed record.
    return failed(error, async (decision, cause) => {
      const outcome = failureOf(cause, decision, `The artifact stays unverified: fix the cause, then take a new backup (\`tidemark backup ${manifest.engine} ${manifest.target}\`).`);
      if (outcome.final) await recordVerification(manifest, [], outcome.info, startedAt, deps, log);
      else log.warn({ err: outcome.info }, 'verification could not run, will retry');
    });
  }
  await recordVerification(manifest, checks, failure, startedAt, deps, log);
  return ack();
}

/** The verification record (the bucket is the truth), then verify.passed or verify.failed. */
async function recordVerification(manifest: Manifest, checks: VerificationCheck[], failure: ErrorInfo | undefined, startedAt: Date, deps: VerifierDeps, log: Logger): Promise<void> {
  const finishedAt = deps.clock();
  const durationMs = Math.max(0, finishedAt.getTime() - startedAt.getTime());
  const record: VerificationRecord = {
    artifactId: manifest.id,
    status: failure ? 'failed' : 'passed',
    verifiedAt: finishedAt.toISOString(),
    durationMs,
    checks,
    ...(failure ? { error: failure } : {}),
  };
  // The record first: the bucket stays the truth even if the event is lost.
  await deps.store.writeVerification(manifest, record);
  const fields = {
    schemaVersion: SCHEMA_VERSION,
    engine: manifest.engine,
    target: manifest.target,
    requestId: manifest.requestId,
    occurredAt: finishedAt.toISOString(),
    artifactId: manifest.id,
    checks,
    durationMs,
  };
  if (failure) {
    await deps.publisher.publish(subjects.verifyFailed(manifest.engine, manifest.target), VerifyFailed, { ...fields, error: failure }, messageIds.verification(manifest.id));
    log.error({ err: failure, failedChecks: checks.filter((c) => !c.ok).length }, 'verification failed');
  } else {
    await deps.publisher.publish(subjects.verifyPassed(manifest.engine, manifest.target), VerifyPassed, fields, messageIds.verification(manifest.id));
    log.info({ checks: checks.length, durationMs }, 'verification passed');
  }
}

/** Restores into a scratch database, compares, and drops the scratch database whatever happened. */
async function verifyPgArtifact(manifest: Manifest, deps: VerifierDeps, ctx: Context): Promise<VerificationCheck[]> {
  if (!deps.sandbox) {
    throw new TidemarkError('CONFIG_INVALID', 'pg artifacts are verified in a sandbox, but sandbox.postgres is not configured; add it to tidemark.yaml');
  }
  const sandbox = deps.sandbox;
  const expected = manifest.source as unknown as PgSourceFacts;
  const scratch = scratchDatabaseName(manifest.id, deps.randomSuffix?.() ?? randomBytes(3).toString('hex'));
  const release = await deps.scratchClaims?.claim(scratch);
  try {
    await sandbox.createDatabase(scratch);
    try {
      await restoreArtifact(sandbox, scratch, manifest, deps, ctx);
      const tableChecksums = expected.tables.some((t) => t.checksum !== undefined);
      const probeK = probeKOf(expected);
      const actual = await sandbox.collectFacts(scratch, { tableChecksums, ...(probeK !== undefined ? { probeK } : {}) });
      return compareFacts(expected, actual);
    } finally {
      await sandbox.dropDatabase(scratch).catch((error: unknown) => ctx.logger.error({ err: error, database: scratch }, 'could not drop the scratch database; drop it by hand'));
    }
  } finally {
    await release?.();
  }
}

/** Extracts and starts a base backup in a scratch directory, compares, and always removes it. */
async function verifyPgBase(manifest: Manifest, deps: VerifierDeps, ctx: Context): Promise<VerificationCheck[]> {
  if (!deps.pgBase) {
    throw new TidemarkError('CONFIG_INVALID', 'pg base backups are verified by starting them on the verifier host, but no pg work directory is configured; set pg.workDir in tidemark.yaml');
  }
  return verifyPgBaseArtifact(manifest, deps.pgBase, deps, {
    progress: ctx.progress,
    signal: ctx.signal,
    suffix: deps.randomSuffix?.() ?? randomBytes(3).toString('hex'),
    onCleanupError: (error, dir) => ctx.logger.error({ err: error, dir }, 'could not remove the scratch data directory; remove it by hand'),
  });
}

/** Restores into a scratch collection of the sandbox Qdrant, compares, and always deletes it. */
async function verifyQdrant(manifest: Manifest, deps: VerifierDeps, ctx: Context): Promise<VerificationCheck[]> {
  if (!deps.sandboxQdrant) {
    throw new TidemarkError('CONFIG_INVALID', 'qdrant artifacts are verified in a sandbox, but sandbox.qdrant is not configured; add it to tidemark.yaml');
  }
  const scratch = scratchCollectionName(manifest.id, deps.randomSuffix?.() ?? randomBytes(3).toString('hex'));
  return verifyQdrantArtifact(deps.sandboxQdrant, scratch, manifest, deps, {
    progress: ctx.progress,
    signal: ctx.signal,
    onCleanupError: (error, collection) => ctx.logger.error({ err: error, collection }, 'could not delete the scratch collection on the qdrant sandbox; delete it by hand'),
  });
}

/** Restores into a scratch directory below files.workDir, compares, and always removes it. */
async function verifyFiles(manifest: Manifest, deps: VerifierDeps, ctx: Context): Promise<VerificationCheck[]> {
  if (deps.filesWorkDir === undefined) {
    throw new TidemarkError('CONFIG_INVALID', 'files snapshots are verified by restoring them on the verifier host, but no files work directory is configured; set files.workDir in tidemark.yaml');
  }
  return verifyFilesArtifact(manifest, deps.filesWorkDir, deps, {
    progress: ctx.progress,
    signal: ctx.signal,
    suffix: deps.randomSuffix?.() ?? randomBytes(3).toString('hex'),
    onCleanupError: (error, dir) => ctx.logger.error({ err: error, dir }, 'could not remove the scratch directory of a files verification; remove it by hand'),
  });
}
