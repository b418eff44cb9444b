import { RequestRestore, SCHEMA_VERSION, parseMessage, subjects } from '@tidemark/contracts';
import type { Command } from '../args.js';
import { restoreFollower } from './follow.js';
import { newRequestId, requestAndFollow, requestedBy, type CommandDeps } from './request.js';
import { restoreWatchSpecs } from './watch.js';

type RestoreCommand = Extract<Command, { name: 'restore' }>;

export function buildRestoreRequest(command: RestoreCommand, requestId: string, by = requestedBy()): RequestRestore & { requestId: string } {
  const request = parseMessage(RequestRestore, {
    requestId,
    schemaVersion: SCHEMA_VERSION,
    requestedBy: by,
    overwrite: command.overwrite,
    ...(command.artifactId !== undefined ? { artifactId: command.artifactId } : {}),
    // --into names a database for pg and a collection for qdrant.
    ...(command.intoDatabase !== undefined ? (command.engine === 'qdrant' ? { intoCollection: command.intoDatabase } : { intoDatabase: command.intoDatabase }) : {}),
    ...(command.pointInTime !== undefined ? { pointInTime: command.pointInTime } : {}),
    ...(command.intoDirectory !== undefined ? { intoDirectory: command.intoDirectory } : {}),
    ...(command.intoPort !== undefined ? { intoPort: command.intoPort } : {}),
    ...(command.collection !== undefined ? { collection: command.collection } : {}),
    ...(command.paths !== undefined ? { paths: command.paths } : {}),
    ...(command.intoBucket !== undefined ? { intoBucket: command.intoBucket } : {}),
    ...(command.intoPrefix !== undefined ? { intoPrefix: command.intoPrefix } : {}),
    ...(command.reason !== undefined ? { reason: command.reason } : {}),
  });
  return { ...request, requestId };
}

export async function runRestore(command: RestoreCommand, deps: CommandDeps): Promise<number> {
  const requestId = (deps.newRequestId ?? newRequestId)();
  const subject = subjects.restoreRequested(command.engine, command.target);
  const request = buildRestoreRequest(command, requestId);
  return requestAndFollow(deps, subject, request, command.wait
    ? { specs: restoreWatchSpecs(command.engine, command.target), follower: restoreFollower(requestId, subject), progress: { action: 'restore', engine: command.engine, target: command.target } }
    : undefined);
}
