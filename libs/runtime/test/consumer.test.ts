import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { startNats, type NatsTestServer } from '@tidemark/testkit';
import {
  COMMANDS_STREAM, CONTENT_TYPE_HEADER, MAX_COMMAND_BYTES, MSGPACK, RequestBackup, STREAMS, TidemarkError, encode, subjects,
} from '@tidemark/contracts';
import { connectNats, ensureConsumer, ensureStreams, natsConfigFromEnv } from '../src/nats.js';
import { createEventPublisher, type EventPublisher } from '../src/publish.js';
import { ack, failed, runConsumer, type HandlerContext, type Outcome, type RunningConsumer } from '../src/consumer.js';
import { consumerPolicyOf, DEFAULT_CONSUMER_SETTINGS, decideFailure, type ConsumerPolicy } from '../src/consumer-policy.js';
import { collectRejections, eventually, quietLogger, sleep } from './helpers.js';

const DURABLE = 'runtime-test-backups';
const FILTER = 'backup.requested.pg.*';
const SUBJECT = subjects.backupRequested('pg', 'main');
const text = (s: string) => new TextEncoder().encode(s);

let server: NatsTestServer;
let nc: NatsConnection;
let sender: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let publisher: EventPublisher;
let running: RunningConsumer | undefined;

beforeAll(async () => {
  server = await startNats();
  nc = await connectNats(natsConfigFromEnv({ TIDEMARK_NATS_URL: server.url }), 'runtime-consumer-test', quietLogger);
  sender = await connect({ servers: server.url });
  jsm = await nc.jetstreamManager();
  js = nc.jetstream();
  publisher = createEventPublisher(js);
  await ensureStreams(jsm, STREAMS);
});

afterEach(async () => {
  await running?.stop(2000);
  running = undefined;
});

afterAll(async () => {
  await sender?.close();
  await nc?.close();
  await server?.stop();
});

/** A clean command stream and a new consumer (a work queue allows one consumer per filter). */
async function freshConsumer(ackWaitMs: number, maxDeliver = 5): Promise<void> {
  await jsm.streams.purge(COMMANDS_STREAM.name);
  for await (const info of jsm.consumers.list(COMMANDS_STREAM.name)) await jsm.consumers.delete(COMMANDS_STREAM.name, info.name);
  await ensureConsumer(jsm, COMMANDS_STREAM.name, DURABLE, FILTER, { ackWaitMs, maxDeliver });
}

type Handler = (message: RequestBackup, context: HandlerContext) => Promise<Outcome>;

/** The default policy with a backoff starting at `initialMs` and the given stall window. */
const policyOf = (initialMs: number, stallMs = 60_000): ConsumerPolicy =>
  consumerPolicyOf({ ...DEFAULT_CONSUMER_SETTINGS, backoff: { initialSeconds: initialMs / 1000, maxSeconds: 60 }, stallSeconds: { backup: stallMs / 1000, restore: 600, verify: 600, other: 300 } });

function start(handler: Handler, extra: { concurrency?: number; policy?: ConsumerPolicy; watchMs?: number } = {}): RunningConsumer {
  running = runConsumer({
    js, stream: COMMANDS_STREAM.name, durable: DURABLE, schema: RequestBackup, handler, logger: quietLogger, kind: 'command', publisher,
    fetchExpiresMs: 1000, ...extra,
  });
  return running;
}

const streamMessages = async () => (await jsm.streams.info(COMMANDS_STREAM.name)).state.messages;
const consumerInfo = () => jsm.consumers.info(COMMANDS_STREAM.name, DURABLE);

describe('runConsumer: decoding', () => {
  it('handles a JSON command published without headers', async () => {
    await freshConsumer(5000);
    const seen: { message: RequestBackup; attempt: number; seq: number }[] = [];
    start(async (message, context) => {
      seen.push({ message, attempt: context.attempt, seq: context.streamSequence });
      return ack();
    });
    sender.publish(SUBJECT, text('{"reason":"before migration","verify":true}'));
    await eventually(() => seen.length > 0 || undefined, 10_000, 'the handler');
    expect(seen[0]?.message).toEqual({ schemaVersion: 1, reason: 'before migration', verify: true });
    expect(seen[0]?.attempt).toBe(1);
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 5000, 'an empty stream');
  });

  it('handles a msgpack command with a content type, and an empty payload as defaults', async () => {
    await freshConsumer(5000);
    const seen: RequestBackup[] = [];
    start(async (message) => {
      seen.push(message);
      return ack();
    });
    const h = headers();
    h.set(CONTENT_TYPE_HEADER, MSGPACK);
    await js.publish(SUBJECT, encode({ schemaVersion: 1, requestId: 'req-1', kind: 'logical' }), { headers: h });
    await js.publish(SUBJECT, new Uint8Array(0));
    await eventually(() => seen.length >= 2 || undefined, 10_000, 'two messages');
    expect(seen[0]).toEqual({ schemaVersion: 1, requestId: 'req-1', kind: 'logical' });
    expect(seen[1]).toEqual({ schemaVersion: 1 });
  });
});

describe('runConsumer: malformed commands', () => {
  it('rejects malformed JSON and an unknown schemaVersion, leaves the stream empty and redelivers nothing', async () => {
    const ackWaitMs = 1000;
    await freshConsumer(ackWaitMs);
    const rejections = collectRejections(nc);
    let handled = 0;
    start(async () => {
      handled++;
      return ack();
    });
    try {
      const bad = (await js.publish(SUBJECT, text('{"reason": '))).seq;
      const future = (await js.publish(SUBJECT, text('{"schemaVersion": 2}'))).seq;
      const invalid = (await js.publish(SUBJECT, text('{"verify": "yes"}'))).seq;
      await eventually(() => rejections.seen.length >= 3 || undefined, 10_000, 'three rejections');
      const bySeq = new Map(rejections.seen.map((r) => [r.streamSequence, r]));
      expect(bySeq.get(bad)).toMatchObject({ subject: SUBJECT, error: { code: 'COMMAND_UNDECODABLE', retryable: false }, payloadPreview: '{"reason": ' });
      expect(bySeq.get(future)?.error.code).toBe('COMMAND_UNKNOWN_VERSION');
      expect(bySeq.get(invalid)?.error).toMatchObject({ code: 'COMMAND_INVALID' });
      expect(bySeq.get(invalid)?.error.message).toContain('verify');
      await sleep(ackWaitMs * 2.5);
      expect(await streamMessages()).toBe(0);
      const info = await consumerInfo();
      expect(info.num_ack_pending).toBe(0);
      expect(info.delivered.consumer_seq).toBe(3);
      expect(handled).toBe(0);
      expect(rejections.seen).toHaveLength(3);
    } finally {
      rejections.stop();
    }
  });

  it('rejects a command larger than MAX_COMMAND_BYTES even when the stream would store it', async () => {
    // The stream normally refuses such a payload (the intake watcher answers it); widen the stream
    // for this test to prove the consumer's own check.
    await ensureStreams(jsm, [{ ...COMMANDS_STREAM, maxMsgSize: MAX_COMMAND_BYTES * 4 }]);
    try {
      await freshConsumer(1000);
      const rejections = collectRejections(nc);
      let handled = 0;
      start(async () => {
        handled++;
        return ack();
      });
      const big = `{"reason":"${'x'.repeat(MAX_COMMAND_BYTES)}"}`;
      const seq = (await js.publish(SUBJECT, text(big))).seq;
      await eventually(() => rejections.seen.length >= 1 || undefined, 10_000, 'a rejection');
      expect(rejections.seen[0]).toMatchObject({ subject: SUBJECT, streamSequence: seq, error: { code: 'COMMAND_TOO_LARGE' } });
      expect(rejections.seen[0]?.payloadPreview.length).toBeLessThanOrEqual(200);
      await sleep(1500);
      expect(await streamMessages()).toBe(0);
      expect(handled).toBe(0);
      rejections.stop();
    } finally {
      await running?.stop(1000);
      running = undefined;
      await ensureStreams(jsm, STREAMS);
    }
  });
});

describe('runConsumer: outcomes', () => {
  it('naks a retryable error with backoff and succeeds on a later delivery', async () => {
    await freshConsumer(10_000);
    const attempts: { attempt: number; at: number }[] = [];
    start(async (_message, context) => {
      attempts.push({ attempt: context.attempt, at: Date.now() });
      if (context.attempt < 3) throw new TidemarkError('SOURCE_UNAVAILABLE', 'database is restarting');
      return ack();
    }, { policy: policyOf(300) });
    await js.publish(SUBJECT, text('{}'));
    await eventually(() => attempts.length >= 3 || undefined, 15_000, 'three attempts');
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 5000, 'an empty stream');
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    const [first, second, third] = attempts;
    // nak delays: 300 ms then 600 ms (well below the 10 s ack wait, so these are the naks).
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(250);
    expect(second!.at - first!.at).toBeLessThan(5000);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(550);
  });

  it('terminates a permanent error at once and an unknown error on the last delivery', async () => {
    await freshConsumer(1000, 2);
    const attempts: number[] = [];
    start(async (message, context) => {
      attempts.push(context.attempt);
      if (message.reason === 'permanent') throw new TidemarkError('SOURCE_AUTH_FAILED', 'password authentication failed');
      throw new Error('unexpected');
    }, { policy: policyOf(100) });
    await js.publish(SUBJECT, text('{"reason":"permanent"}'));
    await eventually(() => attempts.length >= 1 || undefined, 5000, 'the first attempt');
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 5000, 'an empty stream');
    await js.publish(SUBJECT, text('{"reason":"bug"}'));
    await eventually(() => attempts.length >= 3 || undefined, 10_000, 'two more attempts');
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 5000, 'an empty stream');
    await sleep(1500);
    expect(attempts).toEqual([1, 1, 2]);
  });

  it('keeps a handler that reports progress alive past the ack wait (one delivery in all)', async () => {
    const ackWaitMs = 1000;
    await freshConsumer(ackWaitMs);
    const calls: number[] = [];
    start(async (_message, context) => {
      calls.push(context.attempt);
      for (let step = 0; step < 14; step++) {
        await sleep(250);
        context.progress(`step ${step}`);
      }
      return ack();
    }, { concurrency: 2, policy: policyOf(100, 2000) });
    await js.publish(SUBJECT, text('{}'));
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 15_000, 'an empty stream');
    await sleep(ackWaitMs * 1.5);
    expect(calls).toEqual([1]);
    // One delivery in all: the consumer sequence counts every delivery, redeliveries included.
    expect((await consumerInfo()).delivered.consumer_seq).toBe(1);
  });

  it('aborts a handler that stops reporting progress with TIMEOUT after its stall window, retries it, and fails it finally on the last attempt', async () => {
    await freshConsumer(10_000, 2);
    const seen: { attempt: number; reason: unknown; abortedAfterMs: number; isLast: boolean }[] = [];
    const decisions: { final: boolean; code: string | undefined }[] = [];
    start(async (_message, context) => {
      const started = Date.now();
      context.progress('started');
      // A hung tool: nothing moves, and no timer keeps the message alive.
      await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve(), { once: true }));
      seen.push({ attempt: context.attempt, reason: context.signal.reason, abortedAfterMs: Date.now() - started, isLast: context.isLastAttempt });
      return failed(new Error('the tool was killed'), async (decision, cause) => {
        decisions.push({ final: decision.final, code: cause instanceof TidemarkError ? cause.code : undefined });
      });
    }, { policy: policyOf(100, 800), watchMs: 100 });
    await js.publish(SUBJECT, text('{}'));
    await eventually(() => seen.length >= 2 || undefined, 10_000, 'two attempts');
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 5000, 'an empty stream');
    expect(seen.map((s) => s.attempt)).toEqual([1, 2]);
    expect(seen.map((s) => s.isLast)).toEqual([false, true]);
    for (const attempt of seen) {
      expect(attempt.reason).toBeInstanceOf(TidemarkError);
      expect((attempt.reason as TidemarkError).code).toBe('TIMEOUT');
      expect((attempt.reason as TidemarkError).retryable).toBe(true);
      // Aborted after the 800 ms stall window, well before the 10 s ack wait.
      expect(attempt.abortedAfterMs).toBeGreaterThanOrEqual(750);
      expect(attempt.abortedAfterMs).toBeLessThan(3000);
    }
    // The report is written with the runner's decision and the TIMEOUT that stopped the job, not the error the abort caused.
    expect(decisions).toEqual([{ final: false, code: 'TIMEOUT' }, { final: true, code: 'TIMEOUT' }]);
    expect((await consumerInfo()).delivered.consumer_seq).toBe(2);
  });

  it('the backoff policy: initial delay doubling per attempt up to the cap; permanent errors and the last attempt are final', () => {
    const policy = consumerPolicyOf({ ...DEFAULT_CONSUMER_SETTINGS, backoff: { initialSeconds: 2, maxSeconds: 10 } });
    const retryable = new TidemarkError('SOURCE_UNAVAILABLE', 'down');
    expect([1, 2, 3, 4, 5].map((attempt) => decideFailure(retryable, attempt, 10, policy).retryInMs)).toEqual([2000, 4000, 8000, 10_000, 10_000]);
    expect(decideFailure(retryable, 4, 5, policy).final).toBe(false);
    expect(decideFailure(retryable, 5, 5, policy)).toMatchObject({ final: true, retryInMs: 0 });
    expect(decideFailure(retryable, 50, -1, policy).final).toBe(false);
    expect(decideFailure(new TidemarkError('SOURCE_AUTH_FAILED', 'refused'), 1, 5, policy).final).toBe(true);
    expect(decideFailure(new TidemarkError('TIMEOUT', 'stalled'), 1, 5, policy).final).toBe(false);
    expect(policy.stallMs('backup.requested.pg.main')).toBe(300_000);
    expect(policy.stallMs('restore.requested.qdrant.v')).toBe(600_000);
    expect(policy.stallMs('artifact.stored.pg.main')).toBe(600_000);
  });

  it('runs messages in parallel up to the concurrency', async () => {
    await freshConsumer(5000);
    let active = 0;
    let peak = 0;
    let done = 0;
    start(async () => {
      active++;
      peak = Math.max(peak, active);
      await sleep(400);
      active--;
      done++;
      return ack();
    }, { concurrency: 3 });
    for (let i = 0; i < 6; i++) await js.publish(SUBJECT, text(`{"reason":"r${i}"}`));
    await eventually(() => done >= 6 || undefined, 15_000, 'six messages');
    expect(peak).toBe(3);
  });

  it('stop() aborts running handlers, whose nak hands the message back', async () => {
    await freshConsumer(30_000);
    let started = false;
    const consumer = start(async (_message, context) => {
      started = true;
      await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve(), { once: true }));
      return failed(context.signal.reason);
    });
    await js.publish(SUBJECT, text('{}'));
    await eventually(() => started || undefined, 5000, 'the handler to start');
    expect(consumer.inFlight).toBe(1);
    await consumer.stop(2000);
    running = undefined;
    expect(consumer.inFlight).toBe(0);
    expect(await streamMessages()).toBe(1);
    // Another instance picks it up at once (the nak had no delay; the ack wait is 30 s).
    const seen: number[] = [];
    start(async (_message, context) => {
      seen.push(context.attempt);
      return ack();
    });
    await eventually(() => seen.length > 0 || undefined, 5000, 'the redelivery');
    expect(seen).toEqual([2]);
  });
});

describe('runConsumer: redelivery while running', () => {
  it('never runs a message twice at once, and acks the newest delivery', async () => {
    await freshConsumer(800);
    const calls: number[] = [];
    // The runner's watch (and so its in-progress ack) comes later than the ack wait, as when its
    // event loop is blocked: the server redelivers while the handler still runs.
    start(async (_message, context) => {
      calls.push(context.attempt);
      await sleep(2500);
      return ack();
    }, { concurrency: 3, watchMs: 60_000 });
    await js.publish(SUBJECT, text('{}'));
    await eventually(async () => ((await streamMessages()) === 0 ? true : undefined), 10_000, 'an empty stream');
    expect(calls).toEqual([1]);
    expect((await consumerInfo()).delivered.consumer_seq).toBeGreaterThan(1);
  });
});

describe('runConsumer: events', () => {
  it('terminates an unreadable event without answering it', async () => {
    const { EVENTS_STREAM, ArtifactPruned } = await import('@tidemark/contracts');
    const durable = 'runtime-test-events';
    await ensureConsumer(jsm, EVENTS_STREAM.name, durable, 'artifact.pruned.>', { ackWaitMs: 800, deliverNew: true });
    const rejections = collectRejections(nc);
    const seen: string[] = [];
    const consumer = runConsumer({
      js, stream: EVENTS_STREAM.name, durable, schema: ArtifactPruned, logger: quietLogger, kind: 'event', publisher, fetchExpiresMs: 1000,
      handler: async (event) => {
        seen.push(event.artifactId);
        return ack();
      },
    });
    try {
      await js.publish(subjects.artifactPruned('pg', 'main'), text('not json'));
      await publisher.publish(subjects.artifactPruned('pg', 'main'), ArtifactPruned, {
        schemaVersion: 1, engine: 'pg', target: 'main', requestId: 'r', occurredAt: new Date().toISOString(), artifactId: 'a9', reason: 'retention',
      });
      await eventually(() => seen.length > 0 || undefined, 10_000, 'the valid event');
      await sleep(1500);
      expect(seen).toEqual(['a9']);
      const info = await jsm.consumers.info(EVENTS_STREAM.name, durable);
      expect(info.num_ack_pending).toBe(0);
      expect(info.delivered.consumer_seq).toBe(2);
      expect(rejections.seen).toHaveLength(0);
    } finally {
      rejections.stop();
      await consumer.stop(1000);
    }
  });
});

describe('runConsumer: server restart', () => {
  it('keeps pulling after nats-server restarts', async () => {
    await freshConsumer(5000);
    const seen: string[] = [];
    start(async (message) => {
      seen.push(message.reason ?? '');
      return ack();
    });
    await js.publish(SUBJECT, text('{"reason":"before"}'));
    await eventually(() => seen.length >= 1 || undefined, 10_000, 'the first message');
    await server.restart();
    await eventually(async () => {
      try {
        await js.publish(SUBJECT, text('{"reason":"after"}'), { msgID: 'after-restart', timeout: 1000 });
        return true;
      } catch {
        return undefined;
      }
    }, 20_000, 'a publish after the restart');
    await eventually(() => seen.length >= 2 || undefined, 20_000, 'the message after the restart');
    expect(seen).toEqual(['before', 'after']);
  });
});
