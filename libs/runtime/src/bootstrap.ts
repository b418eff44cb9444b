import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from './logger.js';
import type { EventPublisher } from './publish.js';
import type { Shutdown } from './shutdown.js';
import type { HealthCheck } from './health.js';

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
}

/**
 * The common start of every service's main.ts: logger → NATS (TIDEMARK_NATS_URL or `natsUrl`)
 * → ensureStreams(STREAMS) → health server (TIDEMARK_HEALTH_PORT, default 0 = any free port;
 * it logs the port) → SIGTERM/SIGINT shutdown that drains NATS last.
 */
export declare function bootstrap(name: string, options?: { natsUrl?: string; env?: NodeJS.ProcessEnv }): Promise<ServiceContext>;
