import { RequestBackup, SCHEMA_VERSION, parseMessage, subjects } from '@tidemark/contracts';
import type { Command } from '../args.js';
import { backupFollower } from './follow.js';
import { newRequestId, requestAndFollow, requestedBy, type CommandDeps } from './request.js';
import { backupWatchSpecs } from './watch.js';

type BackupCommand = Extract<Command, { name: 'backup' }>;

/** The RequestBackup this invocation sends (validated, so a bad --reason fails here, not at the agent). */
export function buildBackupRequest(command: BackupCommand, requestId: string, by = requestedBy()): RequestBackup & { requestId: string } {
  const request = parseMessage(RequestBackup, {
    requestId,
    schemaVersion: SCHEMA_VERSION,
    requestedBy: by,
    ...(command.kind !== undefined ? { kind: command.kind } : {}),
    ...(command.reason !== undefined ? { reason: command.reason } : {}),
    ...(command.verify !== undefined ? { verify: command.verify } : {}),
    ...(command.collections !== undefined ? { collections: command.collections } : {}),
    ...(command.fullRehash ? { fullRehash: true } : {}),
  });
  return { ...request, requestId };
}

export async function runBackup(command: BackupCommand, deps: CommandDeps): Promise<number> {
  const requestId = (deps.newRequestId ?? newRequestId)();
  const subject = subjects.backupRequested(command.engine, command.target);
  const request = buildBackupRequest(command, requestId);
  return requestAndFollow(deps, subject, request, command.wait
    ? { specs: backupWatchSpecs(command.engine, command.target), follower: backupFollower(requestId, subject), progress: { action: 'backup', engine: command.engine, target: command.target } }
    : undefined);
}
