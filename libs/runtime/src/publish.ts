import type { JetStreamClient } from 'nats';
import type { Schema } from '@tidemark/contracts';
export interface EventPublisher {
  /**
   * Validates `event` against `schema`, encodes it as msgpack (Content-Type header set) and
   * publishes it to JetStream with `msgId` as Nats-Msg-Id, so a redelivered handler that
   * publishes again is de-duplicated by the stream. Resolves once the stream has stored it.
   */
  publish<T>(subject: string, schema: Schema<T>, event: T, msgId?: string): Promise<void>;
}
export declare function createEventPublisher(js: JetStreamClient): EventPublisher;
export declare function publishEvent<T>(js: JetStreamClient, subject: string, schema: Schema<T>, event: T, msgId?: string): Promise<void>;
