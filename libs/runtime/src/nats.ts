// The NATS binding: connection, and the JetStream layout declared in contracts. Everything here
// stays within nats-server 2.9: no `filter_subjects`, no stream or consumer metadata.
import { readFileSync } from 'node:fs';
import {
  AckPolicy, connect, credsAuthenticator, DeliverPolicy, DiscardPolicy, nanos, RetentionPolicy, StorageType,
  type ConnectionOptions, type ConsumerConfig, type JetStreamManager, type NatsConnection, type StreamConfig,
} from 'nats';
import { TidemarkError, type StreamSpec } from '@tidemark/contracts';
import { redactUrl, type Logger } from './logger.js';
import { backoffDelay, sleep } from './retry.js';

export interface NatsConfig {
  readonly servers: string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly credsFile?: string;
}

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/** TIDEMARK_NATS_URL (comma-separated, default nats://127.0.0.1:4222), TIDEMARK_NATS_USER/PASS/TOKEN/CREDS. */
export function natsConfigFromEnv(env: NodeJS.ProcessEnv): NatsConfig {
  const servers = (env['TIDEMARK_NATS_URL'] ?? DEFAULT_NATS_URL)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const pick = (name: string) => {
    const value = env[name];
    return value !== undefined && value !== '' ? value : undefined;
  };
  const user = pick('TIDEMARK_NATS_USER');
  const pass = pick('TIDEMARK_NATS_PASS');
  const token = pick('TIDEMARK_NATS_TOKEN');
  const credsFile = pick('TIDEMARK_NATS_CREDS');
  return {
    servers: servers.length > 0 ? servers : [DEFAULT_NATS_URL],
    ...(user !== undefined ? { user } : {}),
    ...(pass !== undefined ? { pass } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(credsFile !== undefined ? { credsFile } : {}),
  };
}

function connectionOptions(config: NatsConfig, name: string): ConnectionOptions {
  const options: ConnectionOptions = {
    servers: config.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    pingInterval: 20_000,
  };
  if (config.user !== undefined) options.user = config.user;
  if (config.pass !== undefined) options.pass = config.pass;
  if (config.token !== undefined) options.token = config.token;
  if (config.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(config.credsFile);
    } catch (cause) {
      throw new TidemarkError('CONFIG_INVALID', `cannot read the NATS credentials file named by TIDEMARK_NATS_CREDS; check the path and its permissions`, { cause });
    }
    options.authenticator = credsAuthenticator(creds);
  }
  return options;
}

const isAuthError = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && /authorization|authentication/i.test(String((error as { message?: unknown }).message ?? ''));

/**
 * Connects with reconnects forever; logs disconnect/reconnect without credentials. The first
 * connection is retried too (with backoff, logged), so a service may start before NATS does;
 * refused credentials fail at once.
 */
export async function connectNats(config: NatsConfig, name: string, logger: Logger): Promise<NatsConnection> {
  const servers = config.servers.map(redactUrl);
  const options = connectionOptions(config, name);
  let nc: NatsConnection | undefined;
  for (let attempt = 1; nc === undefined; attempt++) {
    try {
      nc = await connect(options);
    } catch (error) {
      if (isAuthError(error)) {
        throw new TidemarkError('CONFIG_INVALID', `nats refused the credentials for ${servers.join(',')}; check TIDEMARK_NATS_USER/PASS/TOKEN/CREDS`, { cause: error });
      }
      const delayMs = Math.max(250, backoffDelay(attempt, 500, 10_000));
      logger.warn({ servers, attempt, retryInMs: delayMs, err: { message: redactUrl(String((error as Error)?.message ?? error)) } }, 'cannot reach nats yet; retrying');
      await sleep(delayMs);
    }
  }
  const connection = nc;
  logger.info({ servers, server: connection.getServer() }, 'connected to nats');
  void (async () => {
    for await (const status of connection.status()) {
      const data = typeof status.data === 'string' ? redactUrl(status.data) : status.data;
      switch (status.type) {
        case 'disconnect':
          logger.warn({ server: data }, 'disconnected from nats; reconnecting');
          break;
        case 'reconnect':
          logger.info({ server: data }, 'reconnected to nats');
          break;
        case 'error':
          logger.error({ detail: String(data) }, 'nats connection error');
          break;
        case 'ldm':
          logger.warn({ server: data }, 'nats server entered lame duck mode; will move to another server');
          break;
        default:
          logger.debug({ type: status.type }, 'nats status');
      }
    }
  })().catch(() => undefined);
  void connection.closed().then((error) => {
    if (error) logger.error({ err: { message: redactUrl(error.message) } }, 'nats connection closed with an error');
    else logger.info('nats connection closed');
  });
  return connection;
}

const SECOND_NANOS = 1_000_000_000;

function errCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const api = (error as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code;
}

/** JetStream API error codes (nats-server's JSErrCodes). */
const JS_STREAM_NOT_FOUND = 10059;
const JS_CONSUMER_NOT_FOUND = 10014;

const isNotFound = (error: unknown, apiCode: number): boolean =>
  errCode(error) === apiCode || /not found/i.test(String((error as { message?: unknown })?.message ?? ''));

function streamConfig(spec: StreamSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    retention: spec.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: spec.maxAgeSeconds * SECOND_NANOS,
    duplicate_window: spec.duplicateWindowSeconds * SECOND_NANOS,
    max_msg_size: spec.maxMsgSize,
    num_replicas: 1,
    description: spec.description,
  };
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

function streamDiffers(wanted: Partial<StreamConfig>, current: StreamConfig): boolean {
  return (
    !sameSet(wanted.subjects ?? [], current.subjects ?? []) ||
    wanted.max_age !== current.max_age ||
    wanted.duplicate_window !== current.duplicate_window ||
    wanted.max_msg_size !== current.max_msg_size ||
    wanted.description !== current.description
  );
}

/** Creates or updates every stream idempotently (compatible with nats-server 2.9). */
export async function ensureStreams(jsm: JetStreamManager, specs: readonly StreamSpec[]): Promise<void> {
  for (const spec of specs) {
    const wanted = streamConfig(spec);
    let current: StreamConfig | undefined;
    try {
      current = (await jsm.streams.info(spec.name)).config;
    } catch (error) {
      if (!isNotFound(error, JS_STREAM_NOT_FOUND)) throw error;
    }
    if (current === undefined) {
      await jsm.streams.add(wanted);
      continue;
    }
    if (current.retention !== wanted.retention) {
      throw new TidemarkError(
        'CONFIG_INVALID',
        `stream ${spec.name} exists with retention "${current.retention}" but "${wanted.retention}" is required; nats cannot change retention in place, so back up and delete the stream, then restart`,
      );
    }
    if (streamDiffers(wanted, current)) {
      await jsm.streams.update(spec.name, { ...current, ...wanted });
    }
  }
}

/** Creates or updates a durable pull consumer with explicit acks and one filter subject. */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filterSubject: string,
  options: { ackWaitMs?: number; maxDeliver?: number; deliverNew?: boolean } = {},
): Promise<void> {
  const ackWait = nanos(options.ackWaitMs ?? 60_000);
  const maxDeliver = options.maxDeliver ?? 5;
  let current: ConsumerConfig | undefined;
  try {
    current = (await jsm.consumers.info(stream, durable)).config;
  } catch (error) {
    if (!isNotFound(error, JS_CONSUMER_NOT_FOUND)) throw error;
  }
  if (current === undefined) {
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: options.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
      ack_wait: ackWait,
      max_deliver: maxDeliver,
      filter_subject: filterSubject,
    });
    return;
  }
  if (current.ack_wait !== ackWait || current.max_deliver !== maxDeliver || current.filter_subject !== filterSubject) {
    try {
      await jsm.consumers.update(stream, durable, { ack_wait: ackWait, max_deliver: maxDeliver, filter_subject: filterSubject });
    } catch (cause) {
      throw new TidemarkError(
        'CONFIG_INVALID',
        `consumer ${durable} on ${stream} could not be updated to filter ${filterSubject}; delete the consumer (nats consumer rm ${stream} ${durable}) and restart`,
        { cause },
      );
    }
  }
}
