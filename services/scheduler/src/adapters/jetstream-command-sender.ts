// Publishes commands the way every Tidemark command travels: msgpack with a Content-Type header,
// through JetStream with a Nats-Msg-Id, resolving once the command stream has stored it.
import { headers, type JetStreamClient } from 'nats';
import { CONTENT_TYPE_HEADER, MSGPACK, RequestBackup, encode, parseMessage } from '@tidemark/contracts';
import { retryWithBackoff, type Logger } from '@tidemark/runtime';
import type { CommandSender } from '../handlers/request-scheduled-backup.js';

export interface CommandSenderOptions {
  readonly attempts?: number;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export function createJetStreamCommandSender(js: JetStreamClient, logger: Logger, options: CommandSenderOptions = {}): CommandSender {
  return {
    async send(subject, command, msgId) {
      const payload = encode(parseMessage(RequestBackup, command));
      const hdrs = headers();
      hdrs.set(CONTENT_TYPE_HEADER, MSGPACK);
      const ack = await retryWithBackoff(
        () => js.publish(subject, payload, { msgID: msgId, headers: hdrs, timeout: options.timeoutMs ?? 5_000 }),
        {
          attempts: options.attempts ?? 5,
          baseDelayMs: 200,
          maxDelayMs: 5_000,
          // Publishing is idempotent thanks to the msgId, so every failure is worth another try.
          shouldRetry: () => true,
          ...(options.signal ? { signal: options.signal } : {}),
          onRetry: (err, attempt, delayMs) => logger.warn({ subject, msgId, attempt, delayMs, err }, 'publishing a scheduled command failed; retrying'),
        },
      );
      return { duplicate: ack.duplicate };
    },
  };
}
