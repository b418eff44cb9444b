// Wiring only: config → bootstrap → alerter (consumers, webhooks, watchdog) → shutdown.
import { loadConfig } from '@tidemark/config';
import { bootstrap, runMain } from '@tidemark/runtime';
import { startAlerter } from './alerter.js';

runMain('alerter', async () => {
  const { config } = loadConfig(process.env);
  const ctx = await bootstrap('alerter', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const alerter = await startAlerter(config, ctx);
  ctx.shutdown.add('alerter', () => alerter.stop());
  alerter.consumers.forEach((consumer) => ctx.watchConsumer(consumer));
  ctx.markStarted();
});
