// Start-up pieces every service that touches the bucket wires the same way.
import { isRetryable, TidemarkError } from '@tidemark/contracts';
import { storageConfig, type TidemarkConfig } from '@tidemark/config';
import { ArtifactStore, createBackend, guardBackend, type Guard } from '@tidemark/storage';
import { loadKeyRing, type KeyRing } from '@tidemark/pipeline';
import { createBreaker, reportStartupFailure, retryWithBackoff, type Breaker, type Logger } from '@tidemark/runtime';
import { guardCluster, pgCluster, type ClusterRole, type PgCluster } from '@tidemark/pg';
import type { PostgresConnection } from '@tidemark/config';

export * from './agent-handlers.js';

/**
 * The key ring named by the config's `encryption` section (the key in `keyEnv` or `keyFile`, older
 * keys in `oldKeyFiles`); without that section, the TIDEMARK_ENCRYPTION_* variables.
 */
export function keyRingFromConfig(config: TidemarkConfig, env: NodeJS.ProcessEnv = process.env): KeyRing {
  const section = config.encryption;
  if (!section) return loadKeyRing(env);
  const keyEnv: NodeJS.ProcessEnv = {};
  if (section.keyFile) keyEnv['TIDEMARK_ENCRYPTION_KEY_FILE'] = section.keyFile;
  else if (env[section.keyEnv] !== undefined) keyEnv['TIDEMARK_ENCRYPTION_KEY'] = env[section.keyEnv];
  if (section.keyId) keyEnv['TIDEMARK_ENCRYPTION_KEY_ID'] = section.keyId;
  if (section.oldKeyFiles.length > 0) keyEnv['TIDEMARK_ENCRYPTION_OLD_KEY_FILES'] = section.oldKeyFiles.join(',');
  return loadKeyRing(keyEnv);
}

export interface GuardedStore {
  readonly store: ArtifactStore;
  /** The breaker's state, for health checks. */
  readonly breakerState: () => Breaker['state'];
  /** Closes the backend and the breaker. */
  close(): Promise<void>;
}

/**
 * The artifact store over the configured backend. Each backend call is retried with backoff
 * around an opossum breaker, so every attempt counts towards opening it and an open breaker is
 * not hammered. No call timeout: a save streams a whole dump.
 */
export async function openArtifactStore(config: TidemarkConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<GuardedStore> {
  const breaker = createBreaker('storage', logger, {
    timeoutMs: 0,
    // A missing object is an answer, not an outage.
    isFailure: (error) => !(error instanceof TidemarkError && error.code === 'STORAGE_NOT_FOUND'),
  });
  const guard: Guard = (operation, call) =>
    retryWithBackoff(() => breaker.fire(call), {
      attempts: 3,
      baseDelayMs: 200,
      maxDelayMs: 2_000,
      shouldRetry: (error) => isRetryable(error) && !(error instanceof TidemarkError && error.code === 'BREAKER_OPEN'),
      onRetry: (error, attempt, delayMs) => logger.warn({ err: error, operation, attempt, delayMs }, 'storage call failed, retrying'),
    });
  const backend = guardBackend(await createBackend(storageConfig(config, env)), guard);
  return {
    store: new ArtifactStore(backend),
    breakerState: () => breaker.state,
    close: async () => {
      await backend.close();
      breaker.shutdown();
    },
  };
}

/**
 * A PostgreSQL cluster behind its own breaker. Only unavailability counts against it (a bad
 * dump or a refused password is an answer, not an outage), and there is no call timeout: dumps
 * and restores take as long as the data.
 */
export function openPgCluster(conn: PostgresConnection, role: ClusterRole, logger: Logger, env: NodeJS.ProcessEnv = process.env): PgCluster & { readonly breakerState: () => Breaker['state'] } {
  const cluster = pgCluster(conn, role, env);
  const breaker = createBreaker(`${role} postgres ${cluster.description}`, logger, {
    timeoutMs: 0,
    isFailure: (error) => error instanceof TidemarkError && (error.code === 'SOURCE_UNAVAILABLE' || error.code === 'SANDBOX_UNAVAILABLE'),
  });
  return { ...guardCluster(cluster, (call) => breaker.fire(call)), breakerState: () => breaker.state };
}

/**
 * Runs a service's main, turning a start-up failure into exit code 1 and one JSON log line, plus
 * the reason as a sentence when stderr is a terminal (see reportStartupFailure).
 */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    reportStartupFailure(name, error);
    process.exit(1);
  });
}
