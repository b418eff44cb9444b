import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type ConnectionOptions, type NatsConnection } from 'nats';
import { TidemarkError } from '@tidemark/contracts';
import { natsConfigFromEnv, redactUrl } from '@tidemark/runtime';

/**
 * Connects once (a CLI should fail fast, not retry for ever). Credentials come from the same
 * environment variables the services read: TIDEMARK_NATS_USER/PASS/TOKEN/CREDS.
 */
export async function connectCli(natsUrl: string, env: NodeJS.ProcessEnv): Promise<NatsConnection> {
  const config = natsConfigFromEnv({ ...env, TIDEMARK_NATS_URL: natsUrl });
  const options: ConnectionOptions = { servers: config.servers, name: 'tidemark-cli', timeout: 5000, maxReconnectAttempts: 10, reconnectTimeWait: 1000 };
  if (config.user !== undefined) options.user = config.user;
  if (config.pass !== undefined) options.pass = config.pass;
  if (config.token !== undefined) options.token = config.token;
  if (config.credsFile !== undefined) {
    try {
      options.authenticator = credsAuthenticator(readFileSync(config.credsFile));
    } catch (cause) {
      throw new TidemarkError('CONFIG_INVALID', 'cannot read the NATS credentials file named by TIDEMARK_NATS_CREDS; check the path', { cause });
    }
  }
  try {
    return await connect(options);
  } catch (cause) {
    const where = config.servers.map(redactUrl).join(', ');
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new TidemarkError('BUS_UNAVAILABLE', `cannot connect to NATS at ${where} (${detail}): start nats-server or pass --nats <url>`, { cause });
  }
}
