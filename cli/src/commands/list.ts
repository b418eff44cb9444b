import type { Command } from '../args.js';
import type { NatsConnection } from 'nats';
import { ALL_ARTIFACTS_LIMIT, listCatalog, walCatalog, walReceivers } from '../catalog-client.js';
import { formatArtifactList, formatStatus, formatWalStatus, lastPassed, statusExitCode, targetStatuses, walStatuses, type WalTargetStatus } from '../format.js';
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

/** How long `status` waits for pg-agent's receivers: an agent that is up answers in milliseconds. */
const RECEIVER_TIMEOUT_MS = 2000;

/**
 * WAL state per target. Neither source is required: without the archive summary or an answering
 * pg-agent the rows say what is unknown instead of failing the whole status.
 */
async function walState(nc: NatsConnection, timeoutMs: number): Promise<WalTargetStatus[]> {
  const [archives, receivers] = await Promise.all([
    walCatalog(nc, timeoutMs).then((r) => r.archives, () => []),
    walReceivers(nc, Math.min(timeoutMs, RECEIVER_TIMEOUT_MS)).catch(() => undefined),
  ]);
  return walStatuses(archives, receivers);
}

export async function runStatus(deps: Pick<CommandDeps, 'nc' | 'io' | 'json' | 'timeoutMs'>, now = new Date()): Promise<number> {
  const [reply, wal] = await Promise.all([listCatalog(deps.nc, { limit: ALL_ARTIFACTS_LIMIT }, deps.timeoutMs), walState(deps.nc, deps.timeoutMs)]);
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
        lastVerified: lastPassed(s)?.artifactId ?? null,
        lastVerifiedAt: lastPassed(s)?.verifiedAt ?? null,
      })),
      wal,
    }));
  } else {
    deps.io.out(formatStatus(statuses, now));
    if (wal.length > 0) deps.io.out(`\n${formatWalStatus(wal, now)}`);
  }
  return exitCode;
}
