// Alerts go to `alert.<severity>.<kind>` in the events stream, msgpack with a Content-Type
// header, with the dedupe key as Nats-Msg-Id.
import { headers, type JetStreamClient } from 'nats';
import { Alert, CONTENT_TYPE_HEADER, MSGPACK, encode, parseMessage, subjects } from '@tidemark/contracts';
import type { AlertStore } from '../alerts/dispatcher.js';

export function createJetStreamAlertStore(js: JetStreamClient, options: { timeoutMs?: number } = {}): AlertStore {
  return {
    async store(alert) {
      const valid = parseMessage(Alert, alert);
      const hdrs = headers();
      hdrs.set(CONTENT_TYPE_HEADER, MSGPACK);
      const ack = await js.publish(subjects.alert(valid.severity, valid.kind), encode(valid), {
        msgID: valid.dedupeKey,
        headers: hdrs,
        timeout: options.timeoutMs ?? 5_000,
      });
      return { duplicate: ack.duplicate };
    },
  };
}
