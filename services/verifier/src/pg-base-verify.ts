// Proves a pg base backup (kind "base") without any sandbox server: the verifier starts the backup
// itself. The stored stream is decoded (GCM tags, size, sha256: INTEGRITY_* on any doubt) and
// extracted into a fresh directory under <pg.workDir>/verify/, checked file by file against
// PostgreSQL's own backup_manifest (pg_verifybackup), started on a free loopback port with the WAL
// it carries replayed to consistency and promoted, and then compared with the manifest's facts:
// system identifier, server version, and the data-level facts of the target's database taken at
// backup start (tables written while the backup ran are only read, see compareBaseFacts). The
// server is always stopped and the directory always removed.
import { freePort, reportingBytes } from '@tidemark/runtime';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import pg from 'pg';
import { TidemarkError, type Manifest, type VerificationCheck } from '@tidemark/contracts';
import { openDecoded, type ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import {
  baseFactsOf, collectFacts, extractTar, MAX_SOCKET_PATH_BYTES, osUserIds, pgSocketPath, pgToolPath, portWasTaken, readRestoredServerFacts,
  requireReachable, restoredServerChecks, socketPathFits, startFromBaseBackup, toPgError, verifyBaseBackup, type BaseBackupServer,
} from '@tidemark/pg';
import { compareBaseFacts, probeKOf } from './compare.js';
import { claimScratchDirectory, releaseScratchDirectory } from './scratch.js';

export interface PgBaseVerifySettings {
  /** config.pg.workDir: scratch data directories go to <workDir>/verify/<artifact>-<random>. */
  readonly workDir: string;
  /** The OS user the restored server runs as when the verifier runs as root (config.pg.osUser). */
  readonly osUser: string;
  /**
   * The role the checks connect as, over the server's private unix socket (trust): it must exist
   * in the source cluster. 'postgres' (initdb's usual bootstrap superuser) by default.
   */
  readonly user?: string;
  /** How long WAL replay to consistency may take; 15 min by default. */
  readonly recoveryTimeoutMs?: number;
  /** Where TIDEMARK_PG_BIN is read from; process.env by default. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface PgBaseVerifyDeps {
  readonly store: ArtifactStore;
  readonly keys: KeyRing;
}

export interface PgBaseVerifyProgress {
  /** Called as the job moves (bytes extracted, each check done): the verification's progress. */
  readonly progress: (what?: string) => void;
  readonly signal?: AbortSignal;
  /** Random part of the scratch directory's name. */
  readonly suffix: string;
  /** Told when the scratch directory could not be removed (it must then be removed by hand). */
  readonly onCleanupError?: (error: unknown, dir: string) => void;
}

/** Where the verifier's scratch data directories go. */
export const scratchDirectoryRoot = (workDir: string): string => join(workDir, 'verify');

const onPath = (name: string, env: NodeJS.ProcessEnv) => (env['PATH'] ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, name)));
const found = (path: string, env: NodeJS.ProcessEnv) => (isAbsolute(path) ? existsSync(path) : onPath(path, env));

/** The server binaries of the backup's major version and pg_verifybackup must be on this host. */
export function requireServerBinaries(major: number, env: NodeJS.ProcessEnv): void {
  const configured = env['TIDEMARK_PG_BIN'];
  const postgres = configured ? join(configured, 'postgres') : `/usr/lib/postgresql/${major}/bin/postgres`;
  const missing = [postgres, pgToolPath('pg_verifybackup', env)].filter((path) => !found(path, env));
  if (missing.length > 0) {
    throw new TidemarkError(
      'CONFIG_INVALID',
      `verifying a base backup of PostgreSQL ${major} starts it on the verifier host, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing; ` +
        `install the postgresql-${major} server package there (or point TIDEMARK_PG_BIN at its bin directory)`,
    );
  }
}

/** Starts the extracted backup on a free port; another port when the chosen one was taken meanwhile. */
async function startOnFreePort(dir: string, settings: PgBaseVerifySettings, user: string): Promise<BaseBackupServer> {
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    try {
      return await startFromBaseBackup(dir, port, {
        user,
        osUser: settings.osUser,
        timeoutMs: settings.recoveryTimeoutMs ?? 15 * 60_000,
        ...(settings.env ? { env: settings.env } : {}),
      });
    } catch (error) {
      const lostRace = error instanceof TidemarkError && portWasTaken(error.message);
      if (!lostRace || attempt >= 3) throw error;
    }
  }
}

/**
 * Errors reading the restored data. The verifier host's fault: extension files missing
 * (CONFIG_INVALID), the scratch server gone or out of resources (SANDBOX_UNAVAILABLE, retryable).
 * Whatever else the server reports while reading its own data is the backup's: VERIFY_MISMATCH.
 */
export function restoredReadError(error: unknown, major: number, database: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const what = `reading ${database} in the restored base backup`;
  if (code === '58P01' || code === '58P02') {
    return new TidemarkError('CONFIG_INVALID', `${what} needs files missing on the verifier host (${message}); install the extensions the source uses for PostgreSQL ${major} (pgvector: postgresql-${major}-pgvector)`, { cause: error });
  }
  if (typeof code === 'string' && code.startsWith('53')) {
    return new TidemarkError('SANDBOX_UNAVAILABLE', `${what}: the scratch server ran out of resources on the verifier host (${message}); free disk or memory there`, { cause: error });
  }
  const mapped = toPgError(error, 'sandbox', what);
  // The restored server's own errors about its data (a bad page, bad input) mean the backup is not good.
  if (mapped.code !== 'INTERNAL' && mapped.code !== 'QUERY_FAILED') return mapped;
  return new TidemarkError('VERIFY_MISMATCH', `${what} failed: ${message}`, { cause: error });
}

/** Decodes, extracts, checks, starts and compares one base backup; the scratch directory is always removed. */
export async function verifyPgBaseArtifact(manifest: Manifest, settings: PgBaseVerifySettings, deps: PgBaseVerifyDeps, progress: PgBaseVerifyProgress): Promise<VerificationCheck[]> {
  const env = settings.env ?? process.env;
  const facts = baseFactsOf(manifest);
  const major = Math.floor(facts.serverVersionNum / 10_000);
  requireServerBinaries(major, env);
  const user = settings.user ?? 'postgres';
  const scratchRoot = scratchDirectoryRoot(settings.workDir);
  const dir = join(scratchRoot, `${manifest.id}-${progress.suffix}`);
  if (!socketPathFits(pgSocketPath(dir))) {
    throw new TidemarkError('CONFIG_INVALID', `the verifier's scratch directory ${dir} is too long for PostgreSQL's unix socket (${MAX_SOCKET_PATH_BYTES} bytes); set a shorter pg.workDir`);
  }
  // Directories we create must be traversable by the server's OS user; existing ones are checked.
  await mkdir(scratchRoot, { recursive: true, mode: 0o711 });
  await requireReachable(dir, await osUserIds(settings.osUser), {
    what: `${dir}, where the base backup is extracted and started`,
    osUser: settings.osUser,
    otherwise: 'set pg.workDir elsewhere',
  });

  const checks: VerificationCheck[] = [];
  // Claimed before the data stream opens: nothing may delay reading it once it does.
  await claimScratchDirectory(dir);
  const decoded = await openDecoded(deps.store, manifest, deps.keys).catch(async (error: unknown) => {
    await releaseScratchDirectory(dir);
    throw error;
  });
  let client: pg.Client | undefined;
  let server: BaseBackupServer | undefined;
  // The runner's reason: SHUTTING_DOWN, or TIMEOUT when the job stalled.
  const shutdown = (): Error => (progress.signal?.reason instanceof Error ? progress.signal.reason : new TidemarkError('SHUTTING_DOWN', 'verification interrupted by shutdown'));
  const abort = () => {
    decoded.destroy(shutdown());
    void client?.end().catch(() => undefined);
  };
  progress.signal?.addEventListener('abort', abort, { once: true });
  try {
    const extracted = await extractTar(reportingBytes(decoded, (bytes) => progress.progress(`extracted ${bytes} bytes`)), dir);
    checks.push({ name: 'extract', ok: true, actual: { files: extracted.files, bytes: extracted.bytes } });
    // Throws INTEGRITY_CHECKSUM_MISMATCH when a file differs from PostgreSQL's backup_manifest.
    await verifyBaseBackup(dir, env);
    checks.push({ name: 'pg_verifybackup', ok: true, detail: 'every file matches the backup_manifest' });
    progress.progress('pg_verifybackup passed');
    if (progress.signal?.aborted) throw shutdown();

    server = await startOnFreePort(dir, settings, user);
    progress.progress('scratch server started');
    if (progress.signal?.aborted) throw shutdown();
    const connect = async (database: string) => {
      const opened = new pg.Client({ host: server!.socketDir, port: server!.port, user, database, connectionTimeoutMillis: 15_000 });
      opened.on('error', () => undefined);
      await opened.connect();
      return opened;
    };

    client = await connect(facts.database?.database ?? 'template1');
    const restored = await readRestoredServerFacts(client);
    checks.push(...restoredServerChecks(restored, { systemIdentifier: facts.systemIdentifier, serverVersion: facts.serverVersion, stopLsn: facts.stopLsn }));

    if (facts.database) {
      const expected = facts.database;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        const probeK = probeKOf(expected);
        const actual = await collectFacts(client, { tableChecksums: expected.tables.some((t) => t.checksum !== undefined), ...(probeK !== undefined ? { probeK } : {}) });
        await client.query('ROLLBACK');
        checks.push(...compareBaseFacts(expected, facts.changedTables ?? [], actual));
      } catch (error) {
        if (progress.signal?.aborted) throw shutdown();
        throw restoredReadError(error, major, expected.database);
      }
    }
    return checks;
  } finally {
    progress.signal?.removeEventListener('abort', abort);
    decoded.destroy();
    await client?.end().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 })
      .then(() => releaseScratchDirectory(dir))
      .catch((error: unknown) => progress.onCleanupError?.(error, dir));
  }
}
