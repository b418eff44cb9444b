import { hostname } from 'node:os';
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import { STREAMS, TidemarkError, type EventEncoding } from '@tidemark/contracts';
import { createEventPublisher, type EventPublisher } from './publish.js';
import { installShutdown, type Shutdown } from './shutdown.js';
import { startHealthServer, type HealthCheck, type HealthChecks } from './health.js';
import type { RunningConsumer } from './consumer.js';
import { consumerPolicyOf, DEFAULT_CONSUMER_SETTINGS, type ConsumerPolicy, type ConsumerSettings } from './consumer-policy.js';
import { createLogger, redactUrl, type Logger } from './logger.js';
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
  /** Adds a named health check, reported by /healthz and /readyz (the NATS check is built in). */
  addHealthCheck(name: string, check: HealthCheck): void;
  /** Adds a check only /readyz waits for (a start-up step of the service). */
  addReadinessCheck(name: string, check: HealthCheck): void;
  /** /readyz waits until the consumer is bound to its durable (named `consumer:<durable>`). */
  watchConsumer(consumer: Pick<RunningConsumer, 'durable' | 'readiness'>): void;
  /** Called by main.ts once everything is wired: until then /readyz answers 503. */
  markStarted(): void;
  /** This instance's id: TIDEMARK_INSTANCE_ID or <hostname>-<pid>. */
  readonly instanceId: string;
  /** Consumer ack wait (TIDEMARK_ACK_WAIT_MS, default 60000) and max deliveries (TIDEMARK_MAX_DELIVER, else the config's consumers.maxDeliver, default 5). */
  readonly ackWaitMs: number;
  readonly maxDeliver: number;
  /** The config's `consumers:` backoff and stall windows, for every runConsumer of the service. */
  readonly consumerPolicy: ConsumerPolicy;
  /** The port the health server listens on (useful when TIDEMARK_HEALTH_PORT is 0). */
  readonly healthPort?: number;
}

/** Where a service reports that it cannot start (process.stderr in production). */
export interface StartupErrorOutput {
  write(text: string): unknown;
  /** A person is watching (a terminal): the reason is also printed as a plain sentence. */
  readonly isTTY?: boolean;
}

/**
 * What a service prints when it cannot start: always one JSON log line (level 60, for log
 * collectors); on a terminal also the reason as a sentence, last, where the eye lands:
 * `tidemark pg-agent: cannot start: targets[0].postgres.port: expected … [CONFIG_INVALID]`.
 */
export function startupFailureText(name: string, error: unknown, isTerminal: boolean): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof TidemarkError ? error.code : 'INTERNAL';
  const json = JSON.stringify({ level: 60, time: Date.now(), service: name, code, msg: `${name} could not start: ${message}` });
  return isTerminal ? `${json}\ntidemark ${name}: cannot start: ${message} [${code}]\n` : `${json}\n`;
}

export function reportStartupFailure(name: string, error: unknown, output: StartupErrorOutput = process.stderr): void {
  output.write(startupFailureText(name, error, output.isTTY === true));
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
 * The common start of every service's main.ts: logger → health server (TIDEMARK_HEALTH_PORT,
 * default 0 = any free port; it logs the port) → NATS (TIDEMARK_NATS_URL or `natsUrl`) →
 * ensureStreams(STREAMS) → SIGTERM/SIGINT shutdown that drains NATS last.
 *
 * The health server comes first so that a service waiting for NATS answers /readyz with 503 and
 * the reason, instead of refusing connections; it stays not ready until main.ts calls
 * markStarted() and every watched consumer is bound.
 */
export async function bootstrap(
  name: string,
  options: {
    natsUrl?: string;
    /** The config's `events.encoding`: how this service's publisher encodes events (alerts are JSON regardless). */
    eventEncoding?: EventEncoding;
    /** The config's `consumers:` section; TIDEMARK_MAX_DELIVER overrides its maxDeliver. */
    consumers?: ConsumerSettings;
    env?: NodeJS.ProcessEnv;
    /** Exit the process after shutdown (default true; false in tests). */
    exit?: boolean;
  } = {},
): Promise<ServiceContext> {
  const env = options.env ?? process.env;
  const logger = createLogger(name, env);
  const instanceId = env['TIDEMARK_INSTANCE_ID']?.trim() || `${hostname()}-${process.pid}`;
  const ackWaitMs = positiveInt(env, 'TIDEMARK_ACK_WAIT_MS', 60_000);
  const consumerSettings = options.consumers ?? DEFAULT_CONSUMER_SETTINGS;
  const maxDeliver = positiveInt(env, 'TIDEMARK_MAX_DELIVER', consumerSettings.maxDeliver);
  const healthPort = positiveInt(env, 'TIDEMARK_HEALTH_PORT', 0, true);
  const healthHost = env['TIDEMARK_HEALTH_HOST']?.trim() || '127.0.0.1';
  const natsConfig = natsConfigFromEnv(options.natsUrl !== undefined ? { ...env, TIDEMARK_NATS_URL: options.natsUrl } : env);
  logger.info({ version: readServiceVersion(), instanceId }, `starting ${name}`);

  // Registered first so that it runs last: consumers and servers added later stop before NATS drains.
  const shutdown = installShutdown(logger, { exit: options.exit ?? true });
  let nc: NatsConnection | undefined;
  let disconnectedSince: Date | undefined;
  /** The start-up step under way; undefined once main.ts has wired everything. */
  let startingStep: string | undefined = `connecting to nats at ${natsConfig.servers.map(redactUrl).join(',')}`;
  const checks: HealthChecks = {
    health: {
      nats: () => {
        if (nc === undefined) return { ok: false, detail: 'not connected yet' };
        if (nc.isClosed()) return { ok: false, detail: 'closed' };
        if (nc.isDraining()) return { ok: false, detail: 'draining (shutting down)' };
        if (disconnectedSince) return { ok: false, detail: `disconnected since ${disconnectedSince.toISOString()}; reconnecting` };
        return { ok: true, detail: nc.getServer() };
      },
    },
    readiness: {
      'start-up': () => (startingStep === undefined ? { ok: true } : { ok: false, detail: startingStep }),
    },
  };
  const health = await startHealthServer(healthPort, checks, healthHost);
  shutdown.add('health', () => health.close());
  logger.info({ port: health.port, host: healthHost }, 'health endpoint listening on /healthz and /readyz');

  let jsm: JetStreamManager;
  let js: JetStreamClient;
  let connection: NatsConnection;
  try {
    connection = nc = await connectNats(natsConfig, `tidemark-${name}-${instanceId}`, logger);
    shutdown.add('nats', async () => {
      if (!connection.isClosed()) await connection.drain();
    });
    void (async () => {
      for await (const status of connection.status()) {
        if (status.type === 'disconnect') disconnectedSince ??= new Date();
        if (status.type === 'reconnect') disconnectedSince = undefined;
      }
    })().catch(() => undefined);
    startingStep = 'ensuring the jetstream streams';
    jsm = await connection.jetstreamManager();
    js = connection.jetstream();
    await ensureStreams(jsm, STREAMS);
    startingStep = 'wiring the service (storage, consumers)';
  } catch (error) {
    // A half-started service must not linger with an open connection or a listening port.
    await nc?.close().catch(() => undefined);
    await health.close();
    throw error;
  }

  return {
    name,
    logger,
    nc: connection,
    js,
    jsm,
    publisher: createEventPublisher(js, options.eventEncoding !== undefined ? { encoding: options.eventEncoding } : {}),
    shutdown,
    addHealthCheck(checkName, check) {
      checks.health[checkName] = check;
    },
    addReadinessCheck(checkName, check) {
      checks.readiness[checkName] = check;
    },
    watchConsumer(consumer) {
      checks.readiness[`consumer:${consumer.durable}`] = () => consumer.readiness();
    },
    markStarted() {
      startingStep = undefined;
    },
    instanceId,
    ackWaitMs,
    maxDeliver,
    consumerPolicy: consumerPolicyOf(consumerSettings),
    healthPort: health.port,
  };
}
