import { headers, type JetStreamClient, type NatsConnection } from 'nats';
import { CONTENT_TYPE_HEADER, encodeForSubject, TidemarkError, type EventEncoding, type Schema } from '@tidemark/contracts';

export interface EventPublisher {
  /**
   * Validates `event` against `schema`, encodes it the way contracts decides for `subject`
   * (alerts JSON, other events the deployment's `events.encoding`, msgpack by default), sets the
   * Content-Type header and publishes it to JetStream with `msgId` as Nats-Msg-Id, so a
   * redelivered handler that publishes again is de-duplicated by the stream. Resolves once the
   * stream has stored it.
   */
  publish<T>(subject: string, schema: Schema<T>, event: T, msgId?: string): Promise<void>;
}

export interface PublisherOptions {
  /** The deployment's `events.encoding` (default msgpack). */
  readonly encoding?: EventEncoding;
}

export function createEventPublisher(js: JetStreamClient, options: PublisherOptions = {}): EventPublisher {
  return { publish: (subject, schema, event, msgId) => publishEvent(js, subject, schema, event, msgId, options) };
}

export async function publishEvent<T>(
  js: JetStreamClient,
  subject: string,
  schema: Schema<T>,
  event: T,
  msgId?: string,
  options: PublisherOptions = {},
): Promise<void> {
  let valid: T;
  try {
    valid = schema.parse(event);
  } catch (cause) {
    // Our own message failing its schema is a bug, not bad input from a sender.
    throw new TidemarkError('INTERNAL', `refusing to publish an invalid message on ${subject}: ${(cause as Error).message}`, { cause });
  }
  const { data, contentType } = encodeForSubject(subject, valid, options.encoding);
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, contentType);
  try {
    await js.publish(subject, data, { headers: h, ...(msgId !== undefined ? { msgID: msgId } : {}) });
  } catch (cause) {
    // An outage (a restarted nats-server, a stream still recovering), not a bug: retried like any.
    throw new TidemarkError('BUS_UNAVAILABLE', `publishing to ${subject} failed: ${(cause as Error).message}; check that nats and the stream are up`, { cause });
  }
}

/** Core NATS messages (not persisted, not acknowledged): progress reports that only matter while a job runs. */
export interface CorePublisher {
  /** Validates and publishes `message`; never throws (a lost report is harmless, the job goes on). */
  publish<T>(subject: string, schema: Schema<T>, message: T): void;
}

export function createCorePublisher(nc: Pick<NatsConnection, 'publish'>, options: PublisherOptions & { readonly onError?: (subject: string, error: unknown) => void } = {}): CorePublisher {
  return {
    publish(subject, schema, message) {
      try {
        const { data, contentType } = encodeForSubject(subject, schema.parse(message), options.encoding);
        const h = headers();
        h.set(CONTENT_TYPE_HEADER, contentType);
        nc.publish(subject, data, { headers: h });
      } catch (error) {
        options.onError?.(subject, error);
      }
    },
  };
}
