// Wiring only: config → bootstrap → intake watcher → timer loop → shutdown.
import { loadConfig } from '@tidemark/config';
import { bootstrap, runMain, startIntakeWatcher } from '@tidemark/runtime';
import { startScheduler } from './scheduler.js';

runMain('scheduler', async () => {
  const { config } = loadConfig(process.env);
  const ctx = await bootstrap('scheduler', { natsUrl: config.nats.url, eventEncoding: config.events.encoding, consumers: config.consumers });
  const intake = startIntakeWatcher(ctx.nc, ctx.publisher, ctx.logger);
  ctx.shutdown.add('intake watcher', () => intake.forEach((sub) => sub.unsubscribe()));
  const scheduler = await startScheduler(config, ctx);
  ctx.shutdown.add('scheduler', () => scheduler.stop());
  ctx.markStarted();
});
