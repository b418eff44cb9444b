import { hostname } from 'node:os';
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import { STREAMS, TidemarkError } from '@tidemark/contracts';
import { createLogger, type Logger } from './logger.js';
import { createEventPublisher, type EventPublisher } from './publish.js';
import { installShutdown, type Shutdown } from './shutdown.js';
import { startHealthServer, type HealthCheck } from './health.js';
import { connectNats, ensureStreams, natsConfigFromEnv } from './nats.js';
import { readServiceVersion } from './version.js';

export interface ServiceContext {
  readonly name: string;
  readonly logger: Logger;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly publisher: EventPublisher;
  readonly shutdown: Shutdown;
  /** Adds a named health check (the NATS connection check is built in). */
  addHealthCheck(name: string, check: HealthCheck): void;
  /** This instance's id: TIDEMARK_INSTANCE_ID or <hostname>-<pid>. */
  readonly instanceId: string;
  /** Consumer ack wait (TIDEMARK_ACK_WAIT_MS, default 60000) and max deliveries (TIDEMARK_MAX_DELIVER, default 5). */
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  /** The port the health server listens on (useful when TIDEMARK_HEALTH_PORT is 0). */
  readonly healthPort?: number;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, allowZero = false): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TidemarkError('CONFIG_INVALID', `${name} must be a whole number${allowZero ? '' : ' above 0'}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * The common start of every service's main.ts: logger → NATS (TIDEMARK_NATS_URL or `natsUrl`)
 * → ensureStreams(STREAMS) → health server (TIDEMARK_HEALTH_PORT, default 0 = any free port;
 * it logs the port) → SIGTERM/SIGINT shutdown that drains NATS last.
 */
export async function bootstrap(
  name: string,
  options: { natsUrl?: string; env?: NodeJS.ProcessEnv; /** Exit the process after shutdown (default true; false in tests). */ exit?: boolean } = {},
): Promise<ServiceContext> {
  const env = options.env ?? process.env;
  const logger = createLogger(name, env);
  const instanceId = env['TIDEMARK_INSTANCE_ID']?.trim() || `${hostname()}-${process.pid}`;
  const ackWaitMs = positiveInt(env, 'TIDEMARK_ACK_WAIT_MS', 60_000);
  const maxDeliver = positiveInt(env, 'TIDEMARK_MAX_DELIVER', 5);
  const healthPort = positiveInt(env, 'TIDEMARK_HEALTH_PORT', 0, true);
  const healthHost = env['TIDEMARK_HEALTH_HOST']?.trim() || '127.0.0.1';
  logger.info({ version: readServiceVersion(), instanceId }, `starting ${name}`);

  // Registered first so that it runs last: consumers and servers added later stop before NATS drains.
  const shutdown = installShutdown(logger, { exit: options.exit ?? true });
  const natsConfig = natsConfigFromEnv(options.natsUrl !== undefined ? { ...env, TIDEMARK_NATS_URL: options.natsUrl } : env);
  const nc = await connectNats(natsConfig, `tidemark-${name}-${instanceId}`, logger);
  shutdown.add('nats', async () => {
    if (!nc.isClosed()) await nc.drain();
  });
  const checks: Record<string, HealthCheck> = {
    nats: () => ({ ok: !nc.isClosed() && !nc.isDraining(), detail: nc.isClosed() ? 'closed' : nc.getServer() }),
  };
  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let health: Awaited<ReturnType<typeof startHealthServer>>;
  try {
    jsm = await nc.jetstreamManager();
    js = nc.jetstream();
    await ensureStreams(jsm, STREAMS);
    health = await startHealthServer(healthPort, checks, healthHost);
  } catch (error) {
    // A half-started service must not linger with an open connection.
    await nc.close().catch(() => undefined);
    throw error;
  }
  shutdown.add('health', () => health.close());
  logger.info({ port: health.port, host: healthHost }, 'health endpoint listening on /healthz and /readyz');

  return {
    name,
    logger,
    nc,
    js,
    jsm,
    publisher: createEventPublisher(js),
    shutdown,
    addHealthCheck(checkName, check) {
      checks[checkName] = check;
    },
    instanceId,
    ackWaitMs,
    maxDeliver,
    healthPort: health.port,
  };
}
