// Test servers as containers (TIDEMARK_TEST_PROVIDER=containers), for machines with Docker but
// without the server packages. testcontainers is imported lazily, so local runs never load it.
// Each helper returns the same shape as its local counterpart.
import type { GenericContainer as GenericContainerClass, StartedTestContainer, Wait as WaitClass } from 'testcontainers';
import { postgresClient, withPgvectorChecked, randomPassword, type PostgresServer, type StartPostgresOptions } from './postgres-client.js';

/** Images, overridable so a mirror or a pinned digest can be used. */
export const CONTAINER_IMAGES = {
  postgres: process.env['TIDEMARK_PG_IMAGE'] ?? 'pgvector/pgvector:pg15',
  // 2.9 matches the nats-server the local provider runs, so tests see the same features.
  nats: process.env['TIDEMARK_NATS_IMAGE'] ?? 'nats:2.9-alpine',
  minio: process.env['TIDEMARK_MINIO_IMAGE'] ?? 'minio/minio:latest',
} as const;

interface Testcontainers {
  readonly GenericContainer: typeof GenericContainerClass;
  readonly Wait: typeof WaitClass;
}

async function loadTestcontainers(): Promise<Testcontainers> {
  try {
    const module = await import('testcontainers');
    return { GenericContainer: module.GenericContainer, Wait: module.Wait };
  } catch (error) {
    throw new Error(
      `TIDEMARK_TEST_PROVIDER=containers needs the testcontainers package and a Docker engine; testcontainers could not be loaded: ${String(error)}`,
    );
  }
}

/** Starts a container, turning a missing Docker engine or image into an actionable message. */
async function startContainer(what: string, container: { start(): Promise<StartedTestContainer> }): Promise<StartedTestContainer> {
  try {
    return await container.start();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `the ${what} test container could not be started (${reason}): start a Docker engine, or unset TIDEMARK_TEST_PROVIDER to use local servers`,
      { cause: error },
    );
  }
}

const POSTGRES_PORT = 5432;
const POSTGRES_DATA_DIR = '/var/lib/postgresql/data';
const CONTAINER_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
};

/** PostgreSQL 15 with pgvector in a container, behind the same interface as the local cluster. */
export async function containerPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const { GenericContainer, Wait } = await loadTestcontainers();
  const user = 'postgres';
  const password = randomPassword();
  const command = ['postgres'];
  for (const [name, value] of Object.entries({ ...CONTAINER_SETTINGS, ...options.settings })) command.push('-c', `${name}=${value}`);

  // The image's entrypoint runs a temporary server (socket only) to initialise, then the real
  // one; pg_isready over TCP inside the container only succeeds for the real one, also after a restart.
  const container = await startContainer(
    'postgres',
    new GenericContainer(CONTAINER_IMAGES.postgres)
      .withEnvironment({ POSTGRES_USER: user, POSTGRES_PASSWORD: password, POSTGRES_HOST_AUTH_METHOD: 'scram-sha-256', POSTGRES_INITDB_ARGS: '--auth=scram-sha-256' })
      .withCommand(command)
      .withExposedPorts(POSTGRES_PORT)
      .withWaitStrategy(
        Wait.forAll([Wait.forListeningPorts(), Wait.forSuccessfulCommand(`pg_isready -h 127.0.0.1 -p ${POSTGRES_PORT} -U ${user}`)]),
      )
      .withStartupTimeout(120_000),
  );

  const endpoint = () => ({ host: container.getHost(), port: container.getMappedPort(POSTGRES_PORT) });
  const client = postgresClient(endpoint, user, password);
  let stopped = false;
  const server: PostgresServer = {
    get host() {
      return endpoint().host;
    },
    // The mapped port can change across a restart.
    get port() {
      return endpoint().port;
    },
    user,
    password,
    dataDir: POSTGRES_DATA_DIR,
    ...client,
    async stop() {
      if (stopped) return;
      stopped = true;
      await client.closeAll();
      await container.stop({ remove: true, removeVolumes: true });
    },
    async restart() {
      if (stopped) throw new Error('the postgres test container was stopped; start a new one instead of restarting it');
      await client.closeAll();
      await container.restart();
    },
  };

  return withPgvectorChecked(server, options);
}

export interface ContainerNats {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Restarts the container; JetStream data survives (the store is in the container's filesystem). */
  restart(): Promise<void>;
}

const NATS_PORT = 4222;

/** nats-server with JetStream in a container; `args` are added to `-js -sd /data`. */
export async function containerNats(options: { args?: readonly string[] } = {}): Promise<ContainerNats> {
  const { GenericContainer, Wait } = await loadTestcontainers();
  const container = await startContainer(
    'nats',
    new GenericContainer(CONTAINER_IMAGES.nats)
      .withCommand(['-js', '-sd', '/data', ...(options.args ?? [])])
      .withExposedPorts(NATS_PORT)
      .withWaitStrategy(Wait.forAll([Wait.forLogMessage(/Server is ready/), Wait.forListeningPorts()]))
      .withStartupTimeout(60_000),
  );
  let stopped = false;
  return {
    get host() {
      return container.getHost();
    },
    get port() {
      return container.getMappedPort(NATS_PORT);
    },
    get url() {
      return `nats://${container.getHost()}:${container.getMappedPort(NATS_PORT)}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop({ remove: true, removeVolumes: true });
    },
    async restart() {
      if (stopped) throw new Error('the nats test container was stopped; start a new one instead of restarting it');
      await container.restart();
    },
  };
}

export interface ContainerMinio {
  /** http://host:port, for an S3 client with path-style addressing. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  stop(): Promise<void>;
}

const MINIO_PORT = 9000;

/** A MinIO S3 endpoint in a container, with random root credentials. */
export async function containerMinio(): Promise<ContainerMinio> {
  const { GenericContainer, Wait } = await loadTestcontainers();
  const accessKey = `tidemark${randomPassword().slice(0, 8).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`;
  const secretKey = randomPassword();
  const container = await startContainer(
    'minio',
    new GenericContainer(CONTAINER_IMAGES.minio)
      .withEnvironment({ MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey })
      .withCommand(['server', '/data'])
      .withExposedPorts(MINIO_PORT)
      .withWaitStrategy(Wait.forHttp('/minio/health/live', MINIO_PORT))
      .withStartupTimeout(60_000),
  );
  const host = container.getHost();
  const port = container.getMappedPort(MINIO_PORT);
  let stopped = false;
  return {
    endpoint: `http://${host}:${port}`,
    host,
    port,
    accessKey,
    secretKey,
    region: 'us-east-1',
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop({ remove: true, removeVolumes: true });
    },
  };
}

export interface ContainerQdrant {
  /** http://host:port of the REST API. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** The snapshots directory inside the container (for `file://` recover locations). */
  readonly snapshotsDir: string;
  stop(): Promise<void>;
}

const QDRANT_PORT = 6333;
const QDRANT_IMAGE = process.env['TIDEMARK_QDRANT_IMAGE'] ?? 'qdrant/qdrant:v1.16.1';

/** A real single-node Qdrant in a container, ready when `/readyz` answers 200. */
export async function containerQdrant(): Promise<ContainerQdrant> {
  const { GenericContainer, Wait } = await loadTestcontainers();
  const container = await startContainer(
    'qdrant',
    new GenericContainer(QDRANT_IMAGE)
      .withExposedPorts(QDRANT_PORT)
      .withWaitStrategy(Wait.forHttp('/readyz', QDRANT_PORT).forStatusCode(200))
      .withStartupTimeout(120_000),
  );
  const host = container.getHost();
  const port = container.getMappedPort(QDRANT_PORT);
  let stopped = false;
  return {
    url: `http://${host}:${port}`,
    host,
    port,
    snapshotsDir: '/qdrant/snapshots',
    async stop() {
      if (stopped) return;
      stopped = true;
      await container.stop({ remove: true, removeVolumes: true });
    },
  };
}
