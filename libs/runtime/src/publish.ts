import { headers, type JetStreamClient } from 'nats';
import { CONTENT_TYPE_HEADER, encode, MSGPACK, TidemarkError, type Schema } from '@tidemark/contracts';

export interface EventPublisher {
  /**
   * Validates `event` against `schema`, encodes it as msgpack (Content-Type header set) and
   * publishes it to JetStream with `msgId` as Nats-Msg-Id, so a redelivered handler that
   * publishes again is de-duplicated by the stream. Resolves once the stream has stored it.
   */
  publish<T>(subject: string, schema: Schema<T>, event: T, msgId?: string): Promise<void>;
}

export function createEventPublisher(js: JetStreamClient): EventPublisher {
  return { publish: (subject, schema, event, msgId) => publishEvent(js, subject, schema, event, msgId) };
}

export async function publishEvent<T>(js: JetStreamClient, subject: string, schema: Schema<T>, event: T, msgId?: string): Promise<void> {
  let valid: T;
  try {
    valid = schema.parse(event);
  } catch (cause) {
    // Our own message failing its schema is a bug, not bad input from a sender.
    throw new TidemarkError('INTERNAL', `refusing to publish an invalid message on ${subject}: ${(cause as Error).message}`, { cause });
  }
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  try {
    await js.publish(subject, encode(valid), { headers: h, ...(msgId !== undefined ? { msgID: msgId } : {}) });
  } catch (cause) {
    throw new TidemarkError('INTERNAL', `publishing to ${subject} failed: ${(cause as Error).message}; check that nats and the stream are up`, {
      cause,
      retryable: true,
    });
  }
}
