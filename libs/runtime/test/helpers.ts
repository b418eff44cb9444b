// Shared helpers for the runtime's NATS suites: a quiet logger and a collector of
// command.rejected events seen on a core subscription.
import { pino } from 'pino';
import type { NatsConnection } from 'nats';
import { CommandRejected, decode, filters, parseMessage } from '@tidemark/contracts';

export const quietLogger = pino({ level: process.env['TIDEMARK_TEST_LOG_LEVEL'] ?? 'silent' });

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// One polling helper for every suite, in the testkit.
export { eventually } from '@tidemark/testkit';

export function collectRejections(nc: NatsConnection) {
  const seen: CommandRejected[] = [];
  const sub = nc.subscribe(filters.commandRejected, {
    callback: (_error, msg) => {
      seen.push(parseMessage(CommandRejected, decode(msg.data, msg.headers)));
    },
  });
  return { seen, stop: () => sub.unsubscribe() };
}
