// Wiring only: config → bootstrap → alerter (consumers, webhooks, watchdog) → shutdown.
import { loadConfig } from '@tidemark/config';
import { bootstrap, createLogger } from '@tidemark/runtime';
import { startAlerter } from './alerter.js';

const SERVICE = 'alerter';

async function main(): Promise<void> {
  let config;
  try {
    ({ config } = loadConfig(process.env));
  } catch (error) {
    createLogger(SERVICE).fatal({ err: error }, 'invalid configuration; fix the named field and restart');
    process.exit(1);
  }
  const ctx = await bootstrap(SERVICE, { natsUrl: config.nats.url });
  const alerter = await startAlerter(config, ctx);
  ctx.shutdown.add('alerter', () => alerter.stop());
}

main().catch((error: unknown) => {
  createLogger(SERVICE).fatal({ err: error }, 'alerter failed to start');
  process.exit(1);
});
