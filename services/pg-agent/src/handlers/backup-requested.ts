// backup.requested.pg.<target>: the command decoded and checked, the backup taken
// (../backup/take-backup.ts), then artifact.stored + backup.completed; a failure is reported as the
// runner decides it (backup.failed).
import { TidemarkError, type ArtifactKind, type RequestBackup } from '@tidemark/contracts';
import { findTarget } from '@tidemark/config';
import { newArtifactId } from '@tidemark/storage';
import { ack, reject, type Outcome } from '@tidemark/runtime';
import {
  announceArtifact, backupFailed, requestIdOf, targetOfSubject, unknownTarget, type AgentContext as Context,
} from '@tidemark/agent';
import { takeBackup, type BackupDeps, type BackupTaken } from '../backup/take-backup.js';

export async function handleBackupRequested(message: RequestBackup, deps: BackupDeps, ctx: Context): Promise<Outcome> {
  const targetName = targetOfSubject(ctx.subject);
  const kind: ArtifactKind = message.kind ?? 'logical';
  const requestId = requestIdOf(message.requestId, ctx.streamSequence);
  const artifactId = newArtifactId(requestId, ctx.storedAt);
  const log = ctx.logger.child({ target: targetName, requestId, artifactId });

  if (kind !== 'logical' && kind !== 'base') {
    return reject(new TidemarkError('COMMAND_INVALID', `kind: the pg agent makes "logical" and "base" backups; "${kind}" is not one of them`));
  }
  const target = findTarget(deps.config, 'pg', targetName);
  if (!target) return unknownTarget(deps.config, 'pg', targetName);

  let taken: BackupTaken;
  try {
    taken = await takeBackup({ target, kind, requestId, artifactId, message }, deps, { ...ctx, logger: log });
  } catch (error) {
    // The runner settles it: shutdown hands the command back, a stall fails it with TIMEOUT.
    return backupFailed(error, { engine: 'pg', target: targetName, requestId, kind, artifactId }, deps, log);
  }
  const { manifest, repeated } = taken;
  if (repeated) log.info('artifact already committed, announcing it again');
  await announceArtifact('pg', manifest, deps);
  if (!repeated) log.info({ storedBytes: manifest.data.storedBytes, rawBytes: manifest.data.rawBytes }, 'backup completed');
  return ack();
}
