#!/usr/bin/env node
// What a plain NATS client sees (README "Subjects and messages"): it publishes a command as JSON
// for a target that does not exist and must read the resulting alert as JSON, with its
// Content-Type header, without any Tidemark code. Run by scripts/quickstart-check.sh.
//
//   TIDEMARK_NATS_URL=nats://127.0.0.1:4222 node scripts/quickstart-nats-client.mjs
import { connect, StringCodec } from 'nats';

const url = process.env.TIDEMARK_NATS_URL ?? 'nats://127.0.0.1:4222';
const timeoutMs = 30_000;
const text = StringCodec();

const nc = await connect({ servers: url, name: 'tidemark-quickstart-client' });
const failures = [];
const seen = { alert: undefined, rejected: undefined };

function readable(msg) {
  const contentType = msg.headers?.get('Content-Type') ?? '(none)';
  const body = text.decode(msg.data);
  try {
    return { contentType, json: JSON.parse(body) };
  } catch {
    return { contentType, notJson: JSON.stringify(body.slice(0, 40)) };
  }
}

const done = new Promise((resolve) => {
  const check = () => { if (seen.alert !== undefined && seen.rejected !== undefined) resolve(); };
  (async () => {
    for await (const msg of nc.subscribe('alert.>')) {
      const event = readable(msg);
      if (event.json !== undefined && !JSON.stringify(event.json).includes('nosuch')) continue;
      seen.alert = { subject: msg.subject, ...event };
      check();
    }
  })();
  (async () => {
    for await (const msg of nc.subscribe('command.rejected')) {
      const event = readable(msg);
      if (event.json !== undefined && !JSON.stringify(event.json).includes('nosuch')) continue;
      seen.rejected = { subject: msg.subject, ...event };
      check();
    }
  })();
});
await nc.flush();

nc.publish('backup.requested.pg.nosuch', text.encode(JSON.stringify({ reason: 'quickstart check: a target that does not exist' })));
const timedOut = await Promise.race([done.then(() => false), new Promise((r) => setTimeout(() => r(true), timeoutMs))]);

if (seen.alert === undefined) failures.push(`no alert.> message within ${timeoutMs / 1000} s after publishing backup.requested.pg.nosuch`);
else if (seen.alert.json === undefined) failures.push(`the alert on ${seen.alert.subject} is not JSON: starts ${seen.alert.notJson} (Content-Type ${seen.alert.contentType})`);
else if (!/json/.test(seen.alert.contentType)) failures.push(`the alert on ${seen.alert.subject} is JSON but says Content-Type ${seen.alert.contentType}`);
if (seen.rejected === undefined) failures.push(`no command.rejected within ${timeoutMs / 1000} s`);

if (seen.alert?.json !== undefined) console.log(`alert ${seen.alert.subject} (${seen.alert.contentType}): ${JSON.stringify(seen.alert.json)}`);
if (seen.rejected !== undefined) {
  // command.rejected is an event: msgpack by default, JSON with `events: { encoding: json }`.
  console.log(`command.rejected (${seen.rejected.contentType})${seen.rejected.json !== undefined ? `: ${JSON.stringify(seen.rejected.json)}` : ''}`);
}
await nc.close();
if (failures.length > 0 || timedOut) {
  for (const failure of failures) console.error(`quickstart-nats-client: ${failure}`);
  process.exit(1);
}
