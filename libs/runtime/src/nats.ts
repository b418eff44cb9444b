import type { JetStreamManager, NatsConnection } from 'nats';
import type { StreamSpec } from '@tidemark/contracts';
import type { Logger } from './logger.js';
export interface NatsConfig {
  readonly servers: string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly credsFile?: string;
}
/** TIDEMARK_NATS_URL (comma-separated, default nats://127.0.0.1:4222), TIDEMARK_NATS_USER/PASS/TOKEN/CREDS. */
export declare function natsConfigFromEnv(env: NodeJS.ProcessEnv): NatsConfig;
/** Connects with reconnects forever; logs disconnect/reconnect without credentials. */
export declare function connectNats(config: NatsConfig, name: string, logger: Logger): Promise<NatsConnection>;
/** Creates or updates every stream idempotently (compatible with nats-server 2.9). */
export declare function ensureStreams(jsm: JetStreamManager, specs: readonly StreamSpec[]): Promise<void>;
/** Creates or updates a durable pull consumer with explicit acks and one filter subject. */
export declare function ensureConsumer(jsm: JetStreamManager, stream: string, durable: string, filterSubject: string, options?: { ackWaitMs?: number; maxDeliver?: number; deliverNew?: boolean }): Promise<void>;
