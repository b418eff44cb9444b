// A physical restore, for restore.requested.pg.<target> with pointInTime (or naming a base artifact).
//
//   choose the base backup → claim the data directory → download and extract it → serve WAL to
//   restore_command from a local HTTP server → start PostgreSQL in archive recovery to the target
//   → wait for promotion → check → hand over (restore_command and the agent's own access removed)
//   → restore.completed
//
// The restored server keeps the source's configuration and authentication (see libs/pg's
// prepareRecoveryDirectory): its roles log in as they did on the source, over TCP on
// pg.restoreListenAddress or the socket in <dir>.socket. What restore_command runs lives in the data
// directory while recovery runs, so the installation's own path never matters to the server.
//
// The restored server keeps running when the agent stops: it is the operator's from then on. Any
// failure stops it, removes the new directory and puts back an overwritten one (see
// data-directory.ts); the source database and its data directory are never touched.
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import {
  RestoreCompleted, TidemarkError, messageIds, parseMessage, recoveryTargetOf, subjects, type RequestRestore,
} from '@tidemark/contracts';
import type { Target } from '@tidemark/config';
import { openDecoded, WalArchive } from '@tidemark/storage';
import { freePort, portIsHeld, reportingBytes, type Logger } from '@tidemark/runtime';
import {
  checkRestoredServer, describePointInTimeTarget, explainRecoveryFailure, extractTar, handOverRestoredServer, logTail, osUserIds, parseLsn,
  portWasTaken, recoveryTimes, requireReachable, startPointInTimeRecovery, type PointInTimeTarget, type PromotedServer, type RecoveringServer, type RecoveryLog,
} from '@tidemark/pg';
import {
  compactTimestamp, eventScope, publishRestoreStarted, type AgentContext as Context, type RestoreRun,
} from '@tidemark/agent';
import { postgresOf, type AgentDeps } from '../agent-deps.js';
import { chooseBaseBackup } from './choose-base-backup.js';
import { claimDataDirectory, readCompletedRestore, type ClaimedDirectory } from './data-directory.js';
import { installWalFetch, segmentEndingAt, startWalServer, type WalServer } from './wal-server.js';
import type { RestoreProgress } from './request.js';

const isWildcard = (address: string): boolean => address === '*' || address === '0.0.0.0' || address === '::';
/** Where to check that a port is free: a wildcard listen address binds every address. */
const probeAddress = (listen: string): string => (listen === '*' ? '0.0.0.0' : listen);
/** The host a client elsewhere connects to: the listen address, or this machine's name for a wildcard. */
const connectHost = (listen: string): string => (isWildcard(listen) ? hostname() : listen);

async function assertPortFree(host: string, port: number): Promise<void> {
  const held = await portIsHeld(port, host).catch((error: unknown) => {
    throw new TidemarkError('CONFIG_INVALID', `cannot listen on ${host}:${port} (${(error as Error).message}); choose another intoPort`, { cause: error });
  });
  if (held) throw new TidemarkError('RESTORE_TARGET_EXISTS', `port ${port} is in use on ${host}; choose another intoPort, or leave it out for a free one`);
}

/** restore.completed, once per request (the msg id makes a repeat a no-op for the stream). */
async function publishCompleted(completed: RestoreCompleted, deps: Pick<AgentDeps, 'publisher'>): Promise<void> {
  await deps.publisher.publish(subjects.restoreCompleted('pg', completed.target), RestoreCompleted, completed, messageIds.restoreCompleted(completed.requestId));
}

/**
 * Why recovery ended without promotion: the WAL server's failure first (a gap, damaged WAL), then
 * what the log says. The log's last lines go to our log, not into the message.
 */
function explainFailure(walServer: WalServer, dir: string, point: PointInTimeTarget, baseBackup: { target: string; artifactId: string }, log: Logger) {
  return (recoveryLog: RecoveryLog, tail: string): TidemarkError => {
    log.warn({ dataDirectory: dir, serverLog: logTail(tail, 12) }, 'the restored server exited during recovery');
    const first = walServer.firstError();
    if (first !== undefined) return new TidemarkError(first.code, `recovery aborted: ${first.message}`, { cause: first, retryable: first.retryable });
    const explained = explainRecoveryFailure(recoveryLog, tail, dir, point);
    if (explained.code !== 'RECOVERY_TARGET_UNREACHABLE') return explained;
    const served = walServer.fetches.filter((f) => f.outcome === 'file' || f.outcome === 'partial').map((f) => f.file).filter((f) => !f.endsWith('.history'));
    const last = served.at(-1);
    const replayed = last === undefined ? 'no archived WAL was replayed' : `the last archived WAL file replayed was ${last}`;
    return new TidemarkError(explained.code, `${explained.message} (base backup ${baseBackup.artifactId}; ${replayed}; \`tidemark list pg ${baseBackup.target}\` lists the base backups)`);
  };
}

/**
 * Restores the command's base backup and WAL into a new data directory and hands the promoted
 * server over (restore.started, then restore.completed); throws what stopped it, after rolling back.
 */
export async function restorePointInTime(
  message: RequestRestore, target: Target, run: RestoreRun, progress: RestoreProgress, deps: AgentDeps, ctx: Context,
): Promise<void> {
  const log = ctx.logger;
  const postgres = postgresOf(target);
  if (message.intoDatabase !== undefined) {
    throw new TidemarkError('COMMAND_INVALID', 'a point-in-time restore creates a data directory and a server, not a database: use intoDirectory and intoPort instead of intoDatabase');
  }
  const point: PointInTimeTarget = message.pointInTime ? recoveryTargetOf(message.pointInTime) : { type: 'immediate' };

  const stamp = compactTimestamp(ctx.storedAt);
  const dir = resolve(message.intoDirectory ?? join(deps.config.pg.workDir, 'restores', `${run.target}-${stamp}`));
  progress.dataDirectory = dir;
  const done = await readCompletedRestore(dir, run.requestId);
  if (done !== undefined) {
    log.info({ dataDirectory: dir }, 'this restore already completed; announcing it again');
    await publishCompleted(parseMessage(RestoreCompleted, done), deps);
    return;
  }

  const startedAt = deps.clock();
  const started = Date.now();
  let claimed: ClaimedDirectory | undefined;
  let walServer: WalServer | undefined;
  let server: RecoveringServer | undefined;
  try {
    const { manifest, facts } = await chooseBaseBackup(deps.store, run.target, point, message.artifactId);
    progress.artifactId = manifest.id;
    const osUser = deps.config.pg.osUser;
    const owner = await osUserIds(osUser);
    // restore_command runs as the server's OS user: it must reach node (the fetch script is copied into the data directory).
    await requireReachable(process.execPath, owner, { what: `the node binary ${process.execPath}`, osUser, otherwise: 'install node where it can' });
    const listenAddress = deps.config.pg.restoreListenAddress;

    claimed = await claimDataDirectory({ dir, named: message.intoDirectory !== undefined, overwrite: message.overwrite, stamp, requestId: run.requestId, owner, osUser, logger: log });
    let port = message.intoPort ?? (await freePort(probeAddress(listenAddress)));
    if (message.intoPort !== undefined) await assertPortFree(probeAddress(listenAddress), port);

    await publishRestoreStarted(run, { artifactId: manifest.id, database: dir, startedAt }, deps, ctx);
    log.info({ artifactId: manifest.id, dataDirectory: dir, port, target: describePointInTimeTarget(point), previousKeptAs: claimed.previousKeptAs }, 'point-in-time restore started');

    const downloadStarted = Date.now();
    const decoded = await openDecoded(deps.store, manifest, deps.keys);
    // Shutdown or a stall (the runner's abort reason) stops the extraction; the catch below rolls back.
    const interrupt = () => decoded.destroy(ctx.signal.reason instanceof Error ? ctx.signal.reason : new TidemarkError('SHUTTING_DOWN', 'the point-in-time restore was interrupted'));
    ctx.signal.addEventListener('abort', interrupt, { once: true });
    try {
      if (ctx.signal.aborted) interrupt();
      await extractTar(reportingBytes(decoded, (bytes) => ctx.progress(`base backup extracted ${bytes} bytes`)), dir);
    } finally {
      ctx.signal.removeEventListener('abort', interrupt);
      decoded.destroy();
    }
    const downloadMs = Date.now() - downloadStarted;
    log.info({ downloadMs, bytes: manifest.data.rawBytes }, 'base backup extracted');

    walServer = await startWalServer({
      archive: new WalArchive(deps.store.backend),
      target: run.target,
      systemIdentifier: facts.systemIdentifier,
      keys: deps.keys,
      walSegmentSize: facts.walSegmentSize,
      backupEndSegment: segmentEndingAt(facts.stopTimeline, parseLsn(facts.stopLsn), facts.walSegmentSize),
      onFetch: (fetch) => ctx.progress(`WAL ${fetch.file} ${fetch.outcome}`),
      logger: log,
    });
    const walFetch = await installWalFetch(dir, walServer.url, owner);

    let promoted: PromotedServer;
    for (let attempt = 1; ; attempt += 1) {
      server = await startPointInTimeRecovery(dir, { port, target: point, restoreCommand: walFetch.restoreCommand, listenAddress, socketDirectory: claimed.socketDirectory, osUser });
      try {
        promoted = await server.waitUntilPromoted({ signal: ctx.signal, users: [postgres.user, 'postgres'], explainFailure: explainFailure(walServer, dir, point, { target: run.target, artifactId: manifest.id }, log) });
        break;
      } catch (error) {
        // The free port we picked was taken before postgres bound it: pick another.
        if (message.intoPort !== undefined || attempt >= 3 || !server.hasExited() || !portWasTaken(await server.readLog())) throw error;
        log.warn({ port }, 'the chosen port was taken meanwhile; trying another');
        port = await freePort(probeAddress(listenAddress));
      }
    }
    const { replayMs, startMs } = recoveryTimes(promoted.log, server.spawnedAt, promoted.readyAt);
    const rto = { downloadMs, replayMs, startMs, totalMs: promoted.readyAt.getTime() - started, walFilesFetched: walServer.filesServed() };
    log.info({ rto, stoppedBy: promoted.log.stoppedBy }, 'recovered and promoted');

    const result = await checkRestoredServer(server.socketDirectory, port, promoted.user, {
      systemIdentifier: facts.systemIdentifier,
      stopLsn: facts.stopLsn,
      backupTimeline: facts.stopTimeline,
      database: postgres.database,
    });
    if (result.fatal.length > 0) {
      const failing = result.fatal.map((check) => `${check.name} (expected ${JSON.stringify(check.expected)}, got ${JSON.stringify(check.actual)})`).join(', ');
      throw new TidemarkError('RESTORE_FAILED', `the restored server failed its checks: ${failing}`);
    }
    for (const check of result.checks.filter((c) => !c.ok)) log.warn({ check }, 'restored server check failed');
    // From here on the server holds no reference to this agent, and admits only whom the source admits.
    await handOverRestoredServer(dir, server.socketDirectory, port, result.facts.superuser);
    await walFetch.remove();
    await walServer.close();

    const completed: RestoreCompleted = {
      ...eventScope('pg', run.target, run.requestId),
      occurredAt: deps.clock().toISOString(),
      artifactId: manifest.id,
      database: dir,
      durationMs: Math.max(0, Date.now() - started),
      ...(claimed.previousKeptAs ? { previousDatabaseKeptAs: claimed.previousKeptAs } : {}),
      dataDirectory: dir,
      port,
      host: connectHost(listenAddress),
      socketDirectory: server.socketDirectory,
      osUser: owner === undefined ? userInfo().username : osUser,
      binDirectory: server.binDirectory,
      connectAs: { user: postgres.user, database: postgres.database },
      recoveredTo: {
        timeline: result.facts.timeline,
        lsn: promoted.log.redoDoneLsn ?? result.facts.currentLsn,
        ...(promoted.log.lastTransactionAt ? { lastTransactionAt: promoted.log.lastTransactionAt } : {}),
      },
      rto,
      checks: result.checks,
    };
    await claimed.complete(completed);
    await publishCompleted(completed, deps);
    log.info({ artifactId: manifest.id, dataDirectory: dir, port, timeline: result.facts.timeline }, 'point-in-time restore completed; the server keeps running');
  } catch (error) {
    await server?.stop().catch((stopError: unknown) => log.error({ err: stopError }, 'could not stop the restored server'));
    await walServer?.close();
    await claimed?.rollback().catch((undoError: unknown) => log.error({ err: undoError, dataDirectory: dir }, 'could not roll back the data directory'));
    throw error;
  }
}
