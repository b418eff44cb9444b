import type { Command } from '../args.js';
import { ALL_ARTIFACTS_LIMIT, listCatalog } from '../catalog-client.js';
import { formatArtifactList, formatStatus, statusExitCode, targetStatuses } from '../format.js';
import type { CommandDeps } from './request.js';

type ListCommand = Extract<Command, { name: 'list' }>;

export async function runList(command: ListCommand, deps: Pick<CommandDeps, 'nc' | 'io' | 'json' | 'timeoutMs'>, now = new Date()): Promise<number> {
  const reply = await listCatalog(deps.nc, {
    ...(command.engine !== undefined ? { engine: command.engine } : {}),
    ...(command.target !== undefined ? { target: command.target } : {}),
    ...(command.limit !== undefined ? { limit: command.limit } : {}),
  }, deps.timeoutMs);
  deps.io.out(deps.json ? JSON.stringify(reply) : formatArtifactList(reply.artifacts, now, reply.total));
  return 0;
}

export async function runStatus(deps: Pick<CommandDeps, 'nc' | 'io' | 'json' | 'timeoutMs'>, now = new Date()): Promise<number> {
  const reply = await listCatalog(deps.nc, { limit: ALL_ARTIFACTS_LIMIT }, deps.timeoutMs);
  const statuses = targetStatuses(reply.artifacts);
  const exitCode = statusExitCode(statuses);
  if (deps.json) {
    deps.io.out(JSON.stringify({
      ok: exitCode === 0,
      targets: statuses.map((s) => ({
        engine: s.engine,
        target: s.target,
        artifacts: s.artifacts,
        newest: s.newest,
        ageSeconds: Math.round((now.getTime() - Date.parse(s.newest.createdAt)) / 1000),
        lastVerified: s.newest.verification === 'passed' ? s.newest.artifactId : (s.lastVerified?.artifactId ?? null),
      })),
    }));
  } else {
    deps.io.out(formatStatus(statuses, now));
  }
  return exitCode;
}
