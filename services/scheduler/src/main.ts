// Wiring only: config → bootstrap → intake watcher → timer loop → shutdown.
import { loadConfig } from '@tidemark/config';
import { bootstrap, createLogger, startIntakeWatcher } from '@tidemark/runtime';
import { startScheduler } from './scheduler.js';

const SERVICE = 'scheduler';

async function main(): Promise<void> {
  let config;
  try {
    ({ config } = loadConfig(process.env));
  } catch (error) {
    createLogger(SERVICE).fatal({ err: error }, 'invalid configuration; fix the named field and restart');
    process.exit(1);
  }
  const ctx = await bootstrap(SERVICE, { natsUrl: config.nats.url });
  const intake = startIntakeWatcher(ctx.nc, ctx.publisher, ctx.logger);
  ctx.shutdown.add('intake watcher', () => intake.forEach((sub) => sub.unsubscribe()));
  const scheduler = await startScheduler(config, ctx);
  ctx.shutdown.add('scheduler', () => scheduler.stop());
}

main().catch((error: unknown) => {
  createLogger(SERVICE).fatal({ err: error }, 'scheduler failed to start');
  process.exit(1);
});
