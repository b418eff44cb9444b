// Which base backup a point-in-time restore starts from: the newest that ends before the target
// (time: stoppedAt before it; LSN: stopLsn at or before it; restore point, latest: the newest),
// so the least WAL has to be replayed. Backups whose verification FAILED are skipped (known bad);
// a pending or passed verification makes no difference, except that a passed one wins a tie of
// equal stop LSN. The verifier may lag behind by hours, and an older verified backup would only
// mean more replay. An explicit artifact id overrides all of this.
import { TidemarkError, parsePointInTimeText, type Manifest, type PgBaseSourceFacts } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import { baseFactsOf, describePointInTimeTarget, parseLsn, type PointInTimeTarget } from '@tidemark/pg';

export interface BaseBackupChoice {
  readonly manifest: Manifest;
  readonly facts: PgBaseSourceFacts;
}

/** Microseconds since the epoch: a target may lie a fraction of a millisecond after a backup's end. */
function microsOf(time: string): bigint {
  const parsed = parsePointInTimeText(time);
  if (parsed === undefined) throw new TidemarkError('INTEGRITY_FORMAT', `the time ${JSON.stringify(time)} in a base backup's facts is not a valid time`);
  return parsed.epochMicros;
}

/** Whether recovery from this backup can reach `target` (it must end before the target). */
export function reaches(facts: PgBaseSourceFacts, target: PointInTimeTarget): boolean {
  if (target.type === 'time') return microsOf(facts.stoppedAt) < microsOf(target.time);
  if (target.type === 'lsn') return parseLsn(facts.stopLsn) <= parseLsn(target.lsn);
  return true;
}

/** Newest first: by end time, then (same cluster) by stop LSN. */
const newestFirst = (a: BaseBackupChoice, b: BaseBackupChoice): number => {
  const byTime = Date.parse(b.facts.stoppedAt) - Date.parse(a.facts.stoppedAt);
  if (byTime !== 0 || a.facts.systemIdentifier !== b.facts.systemIdentifier) return byTime;
  const byLsn = parseLsn(b.facts.stopLsn) - parseLsn(a.facts.stopLsn);
  return byLsn > 0n ? 1 : byLsn < 0n ? -1 : 0;
};

const sameEnd = (a: BaseBackupChoice, b: BaseBackupChoice): boolean => a.facts.systemIdentifier === b.facts.systemIdentifier && a.facts.stopLsn === b.facts.stopLsn;

export async function chooseBaseBackup(store: ArtifactStore, target: string, point: PointInTimeTarget, artifactId: string | undefined): Promise<BaseBackupChoice> {
  if (artifactId !== undefined) {
    const manifest = await store.readManifest('pg', target, artifactId);
    if (!manifest) throw new TidemarkError('ARTIFACT_NOT_FOUND', `artifact ${artifactId} of pg target "${target}" is not committed; list artifacts with the catalog`);
    if (manifest.kind !== 'base') {
      throw new TidemarkError('COMMAND_INVALID', `artifact ${artifactId} is a ${manifest.kind} backup; a point-in-time restore starts from a base backup (kind "base"): name one, or leave artifactId out`);
    }
    const facts = baseFactsOf(manifest);
    if (!reaches(facts, point)) {
      throw new TidemarkError('RECOVERY_TARGET_UNREACHABLE', `base backup ${artifactId} ends at ${facts.stoppedAt} (LSN ${facts.stopLsn}), after the recovery target ${describePointInTimeTarget(point)}; name an older base backup or leave artifactId out`);
    }
    return { manifest, facts };
  }

  const all: BaseBackupChoice[] = [];
  for (const manifest of await store.listManifests({ engine: 'pg', target })) {
    if (manifest.kind !== 'base') continue;
    try {
      all.push({ manifest, facts: baseFactsOf(manifest) });
    } catch {
      // A manifest without facts cannot be restored from; the others may still do.
    }
  }
  if (all.length === 0) throw new TidemarkError('ARTIFACT_NOT_FOUND', `pg target "${target}" has no base backup; take one (backup with kind "base") and archive WAL (wal.enabled) before a point-in-time restore`);
  all.sort(newestFirst);

  const eligible = all.filter((choice) => reaches(choice.facts, point));
  let failedVerification = 0;
  for (let i = 0; i < eligible.length; i += 1) {
    const choice = eligible[i] as BaseBackupChoice;
    const verification = await store.readVerification(choice.manifest);
    if (verification?.status === 'failed') {
      failedVerification += 1;
      continue;
    }
    if (verification?.status !== 'passed') {
      // A passed one with the same stop LSN wins the tie.
      const twin = eligible.slice(i + 1).find((other) => sameEnd(other, choice));
      if (twin && (await store.readVerification(twin.manifest))?.status === 'passed') return twin;
    }
    return choice;
  }
  const oldest = all[all.length - 1] as BaseBackupChoice;
  if (failedVerification > 0) {
    throw new TidemarkError('RECOVERY_TARGET_UNREACHABLE', `every base backup of "${target}" before ${describePointInTimeTarget(point)} failed verification; name one with artifactId to use it anyway, or choose a later target`);
  }
  throw new TidemarkError('RECOVERY_TARGET_UNREACHABLE', `no base backup of "${target}" ends before ${describePointInTimeTarget(point)}; the oldest point that can be restored is ${oldest.facts.stoppedAt} (LSN ${oldest.facts.stopLsn}, base backup ${oldest.manifest.id})`);
}
