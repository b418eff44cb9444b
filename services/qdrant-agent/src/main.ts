// The Qdrant agent is wired but consumes nothing yet: Qdrant commands are not stored by the
// command stream (see COMMAND_ENGINES), so nothing waits on it. It starts, reports healthy and
// stops cleanly, so deployments can include it now.
import { loadConfig } from '@tidemark/config';
import { bootstrap } from '@tidemark/runtime';
import { runMain } from '@tidemark/service';

runMain('qdrant-agent', async () => {
  const { config } = loadConfig(process.env);
  const service = await bootstrap('qdrant-agent', { natsUrl: config.nats.url });
  const qdrantTargets = config.targets.filter((t) => t.engine === 'qdrant').map((t) => t.name);
  service.logger.info({ qdrantTargets }, 'qdrant agent ready (idle: qdrant backups are not implemented yet)');
});
