// A Qdrant endpoint for integration tests: the in-process test double (default), or a real Qdrant
// image with TIDEMARK_TEST_PROVIDER=containers. Both answer the same REST API on `url`.
import { freePort } from './ports.js';
import { testProvider } from './provider.js';
import { containerQdrant } from './containers.js';
import { makeTempDir, removeTempDir } from './tmp.js';
import { startQdrantDouble, type QdrantFaults, type RequestRecord } from './qdrant-double/index.js';

export type { QdrantFaults, RequestRecord } from './qdrant-double/index.js';

export interface QdrantTestServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  /** Where the server keeps snapshots; `file://` recover locations must point inside it. */
  readonly snapshotsDir: string;
  /** Fault injection (the double only: a real Qdrant throws a clear error). */
  readonly faults: QdrantFaults;
  /** Requests the double received (the double only). */
  requests(): readonly RequestRecord[];
  stop(): Promise<void>;
}

const unsupported = (what: string) => (): never => {
  throw new Error(`${what} needs the qdrant test double; unset TIDEMARK_TEST_PROVIDER (it is "containers", which runs a real qdrant)`);
};

/** Starts Qdrant for a test: the double on a free loopback port, or a container. */
export async function startQdrant(): Promise<QdrantTestServer> {
  if (testProvider() === 'containers') {
    const container = await containerQdrant();
    return {
      url: container.url,
      port: container.port,
      snapshotsDir: container.snapshotsDir,
      faults: { failNext: unsupported('faults.failNext'), hang: unsupported('faults.hang'), delayMs: unsupported('faults.delayMs'), reset: unsupported('faults.reset') },
      requests: unsupported('requests()'),
      stop: () => container.stop(),
    };
  }
  const dataDir = await makeTempDir('tidemark-qdrant');
  try {
    const double = await listenWithRetry(dataDir);
    let stopped: Promise<void> | undefined;
    return {
      url: double.url,
      port: double.port,
      snapshotsDir: double.snapshotsDir,
      faults: double.faults,
      requests: () => double.requests,
      stop: () => (stopped ??= double.close().finally(() => removeTempDir(dataDir))),
    };
  } catch (error) {
    await removeTempDir(dataDir);
    throw error;
  }
}

/** freePort releases the port before the bind, so another process may take it: retry once. */
async function listenWithRetry(dataDir: string) {
  try {
    return await startQdrantDouble({ dataDir, port: await freePort() });
  } catch {
    return startQdrantDouble({ dataDir, port: await freePort() });
  }
}
