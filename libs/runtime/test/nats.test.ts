import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection, type JetStreamManager, RetentionPolicy } from 'nats';
import { startNats, type NatsTestServer } from '@tidemark/testkit';
import {
  ArtifactPruned, COMMANDS_STREAM, EVENTS_STREAM, MAX_COMMAND_BYTES, STREAMS, decode, parseMessage, subjects,
} from '@tidemark/contracts';
import { connectNats, ensureConsumer, ensureStreams, natsConfigFromEnv } from '../src/nats.js';
import { createEventPublisher } from '../src/publish.js';
import { startIntakeWatcher } from '../src/intake.js';
import { collectRejections, eventually, quietLogger, sleep } from './helpers.js';

let server: NatsTestServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  server = await startNats();
  nc = await connectNats(natsConfigFromEnv({ TIDEMARK_NATS_URL: server.url }), 'runtime-test', quietLogger);
  jsm = await nc.jetstreamManager();
});

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

describe('natsConfigFromEnv', () => {
  it('reads comma-separated servers and optional credentials', () => {
    expect(natsConfigFromEnv({})).toEqual({ servers: ['nats://127.0.0.1:4222'] });
    expect(natsConfigFromEnv({ TIDEMARK_NATS_URL: 'nats://a:4222, nats://b:4222', TIDEMARK_NATS_USER: 'u', TIDEMARK_NATS_PASS: 'p' }))
      .toEqual({ servers: ['nats://a:4222', 'nats://b:4222'], user: 'u', pass: 'p' });
  });
});

describe('ensureStreams', () => {
  it('creates the streams and is idempotent', async () => {
    await ensureStreams(jsm, STREAMS);
    await ensureStreams(jsm, STREAMS);
    const commands = await jsm.streams.info(COMMANDS_STREAM.name);
    expect(commands.config.retention).toBe(RetentionPolicy.Workqueue);
    expect([...commands.config.subjects].sort()).toEqual([...COMMANDS_STREAM.subjects].sort());
    expect(commands.config.max_msg_size).toBe(MAX_COMMAND_BYTES);
    const events = await jsm.streams.info(EVENTS_STREAM.name);
    expect(events.config.retention).toBe(RetentionPolicy.Limits);
    expect(events.config.duplicate_window).toBe(EVENTS_STREAM.duplicateWindowSeconds * 1e9);
  });

  it('updates a stream whose configuration differs', async () => {
    await ensureStreams(jsm, [{ ...EVENTS_STREAM, maxAgeSeconds: 3600, duplicateWindowSeconds: 60, description: 'older layout' }]);
    expect((await jsm.streams.info(EVENTS_STREAM.name)).config.max_age).toBe(3600 * 1e9);
    await ensureStreams(jsm, STREAMS);
    const events = await jsm.streams.info(EVENTS_STREAM.name);
    expect(events.config.max_age).toBe(EVENTS_STREAM.maxAgeSeconds * 1e9);
    expect(events.config.description).toBe(EVENTS_STREAM.description);
  });

  it('refuses to change retention in place, with a message that says what to do', async () => {
    await expect(ensureStreams(jsm, [{ ...EVENTS_STREAM, retention: 'workqueue' }])).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('ensureConsumer', () => {
  it('creates a durable pull consumer and updates it when settings change', async () => {
    await ensureStreams(jsm, STREAMS);
    await ensureConsumer(jsm, EVENTS_STREAM.name, 'runtime-test-consumer', 'artifact.pruned.>', { ackWaitMs: 5000, maxDeliver: 3 });
    await ensureConsumer(jsm, EVENTS_STREAM.name, 'runtime-test-consumer', 'artifact.pruned.>', { ackWaitMs: 5000, maxDeliver: 3 });
    let info = await jsm.consumers.info(EVENTS_STREAM.name, 'runtime-test-consumer');
    expect(info.config).toMatchObject({ ack_policy: 'explicit', ack_wait: 5000 * 1e6, max_deliver: 3, filter_subject: 'artifact.pruned.>' });
    await ensureConsumer(jsm, EVENTS_STREAM.name, 'runtime-test-consumer', 'artifact.pruned.>', { ackWaitMs: 9000, maxDeliver: 7 });
    info = await jsm.consumers.info(EVENTS_STREAM.name, 'runtime-test-consumer');
    expect(info.config).toMatchObject({ ack_wait: 9000 * 1e6, max_deliver: 7 });
  });
});

describe('event publisher', () => {
  it('publishes msgpack with a content type and de-duplicates by msgId', async () => {
    await ensureStreams(jsm, STREAMS);
    const js = nc.jetstream();
    const publisher = createEventPublisher(js);
    const subject = subjects.artifactPruned('pg', 'dedupe');
    const event: ArtifactPruned = {
      schemaVersion: 1, engine: 'pg', target: 'dedupe', requestId: 'r1', occurredAt: new Date().toISOString(), artifactId: 'a1', reason: 'retention',
    };
    const before = (await jsm.streams.info(EVENTS_STREAM.name)).state.messages;
    await publisher.publish(subject, ArtifactPruned, event, 'pruned:a1');
    await publisher.publish(subject, ArtifactPruned, event, 'pruned:a1');
    await publisher.publish(subject, ArtifactPruned, { ...event, artifactId: 'a2' }, 'pruned:a2');
    expect((await jsm.streams.info(EVENTS_STREAM.name)).state.messages).toBe(before + 2);
    const stored = await jsm.streams.getMessage(EVENTS_STREAM.name, { last_by_subj: subject });
    expect(stored.header.get('Content-Type')).toBe('application/msgpack');
    expect(parseMessage(ArtifactPruned, decode(stored.data, stored.header))).toMatchObject({ artifactId: 'a2' });
  });

  it('fails retryable with BUS_UNAVAILABLE when nats does not take the event, never INTERNAL', async () => {
    const gone = await connect({ servers: server.url });
    await gone.close();
    const event = { schemaVersion: 1, engine: 'pg', target: 'x', requestId: 'r1', occurredAt: new Date().toISOString(), artifactId: 'a1', reason: 'retention' } as const;
    await expect(createEventPublisher(gone.jetstream()).publish(subjects.artifactPruned('pg', 'x'), ArtifactPruned, event)).rejects.toMatchObject({ code: 'BUS_UNAVAILABLE', retryable: true });
  });

  it('refuses to publish an event that fails its schema', async () => {
    const publisher = createEventPublisher(nc.jetstream());
    await expect(publisher.publish(subjects.artifactPruned('pg', 'x'), ArtifactPruned, { bogus: true } as never)).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});

describe('intake watcher', () => {
  it('rejects commands the command stream will not store and leaves valid ones alone', async () => {
    await ensureStreams(jsm, STREAMS);
    await jsm.streams.purge(COMMANDS_STREAM.name);
    const publisher = createEventPublisher(nc.jetstream());
    const subs = startIntakeWatcher(nc, publisher, quietLogger);
    const rejections = collectRejections(nc);
    // A separate client, as a person with the nats CLI would be.
    const sender = await connect({ servers: server.url });
    try {
      await nc.flush();
      sender.publish('backup.requested.mysql.x', new TextEncoder().encode('{}'));
      sender.publish('backup.requested.pg.Bad.Target', new TextEncoder().encode('{}'));
      sender.publish('backup.requested.pg.main', new Uint8Array(MAX_COMMAND_BYTES + 10).fill(0x20));
      sender.publish('backup.requested.pg.main', new TextEncoder().encode('{"reason":"valid"}'));
      await sender.flush();
      await eventually(() => rejections.seen.length >= 3 || undefined, 10_000, 'three rejections');
      await sleep(300);
      const bySubject = new Map(rejections.seen.map((r) => [r.subject, r]));
      expect(rejections.seen).toHaveLength(3);
      expect(bySubject.get('backup.requested.mysql.x')?.error).toMatchObject({ code: 'COMMAND_UNKNOWN_SUBJECT' });
      expect(bySubject.get('backup.requested.mysql.x')?.error.message).toContain('unknown engine "mysql"');
      expect(bySubject.get('backup.requested.pg.Bad.Target')?.error.code).toBe('COMMAND_UNKNOWN_SUBJECT');
      const large = bySubject.get('backup.requested.pg.main');
      expect(large?.error.code).toBe('COMMAND_TOO_LARGE');
      expect(large?.sizeBytes).toBe(MAX_COMMAND_BYTES + 10);
      expect(large?.payloadPreview.length).toBeLessThanOrEqual(200);
      // The valid command is stored; the oversized one is not.
      expect((await jsm.streams.info(COMMANDS_STREAM.name)).state.messages).toBe(1);
    } finally {
      rejections.stop();
      for (const sub of subs) sub.unsubscribe();
      await sender.close();
      await jsm.streams.purge(COMMANDS_STREAM.name);
    }
  });
});
