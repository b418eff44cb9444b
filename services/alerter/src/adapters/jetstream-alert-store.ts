// Alerts go to `alert.<severity>.<kind>` in the events stream as JSON with a Content-Type header
// (contracts' publishEncodingFor: people read alerts with a plain subscriber), with the dedupe
// key as Nats-Msg-Id.
import { headers, type JetStreamClient } from 'nats';
import { Alert, CONTENT_TYPE_HEADER, encodeForSubject, parseMessage, subjects } from '@tidemark/contracts';
import type { AlertStore } from '../alerts/dispatcher.js';

export function createJetStreamAlertStore(js: JetStreamClient, options: { timeoutMs?: number } = {}): AlertStore {
  return {
    async store(alert) {
      const valid = parseMessage(Alert, alert);
      const subject = subjects.alert(valid.severity, valid.kind);
      const { data, contentType } = encodeForSubject(subject, valid);
      const hdrs = headers();
      hdrs.set(CONTENT_TYPE_HEADER, contentType);
      const ack = await js.publish(subject, data, {
        msgID: valid.dedupeKey,
        headers: hdrs,
        timeout: options.timeoutMs ?? 5_000,
      });
      return { duplicate: ack.duplicate };
    },
  };
}
