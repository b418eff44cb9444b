import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Alert } from '@tidemark/contracts';
import { AlertDispatcher, DedupeWindow, handleBackupFailed, handleVerifyFailed as handleVerifyFailedUnsettled, type AlertChannel, type AlertStore } from '../src/index.js';
import { settling } from '@tidemark/testkit';
import { DEFAULT_CONSUMER_SETTINGS } from '@tidemark/runtime';
const handleVerifyFailed = settling(handleVerifyFailedUnsettled);

const logger = pino({ enabled: false });
const at = (iso: string) => new Date(iso);
const alert = (severity: Alert['severity'], dedupeKey = 'verify_failed:pg:main:a1'): Alert => ({
  schemaVersion: 1, occurredAt: '2025-01-01T00:00:00.000Z', severity, kind: severity === 'critical' ? 'verify_failed' : 'command_rejected',
  summary: 'something broke', dedupeKey,
});

/** The alert stream double: drops repeats of a msgId like the real stream. */
class StreamDouble implements AlertStore {
  readonly stored: Alert[] = [];
  down = false;
  async store(a: Alert) {
    if (this.down) throw new Error('nats unavailable');
    const duplicate = this.stored.some((s) => s.dedupeKey === a.dedupeKey);
    if (!duplicate) this.stored.push(a);
    return { duplicate };
  }
}

class ChannelDouble implements AlertChannel {
  readonly delivered: Alert[] = [];
  constructor(readonly name: string, readonly minSeverity: Alert['severity'], private readonly fail = false) {}
  async deliver(a: Alert) {
    if (this.fail) throw new Error('http 500');
    this.delivered.push(a);
  }
}

describe('DedupeWindow', () => {
  it('admits a key once per window', () => {
    const window = new DedupeWindow(60_000);
    expect(window.admit('k', at('2025-01-01T00:00:00Z'))).toBe(true);
    expect(window.admit('k', at('2025-01-01T00:00:59Z'))).toBe(false);
    expect(window.admit('other', at('2025-01-01T00:00:59Z'))).toBe(true);
    expect(window.admit('k', at('2025-01-01T00:01:00Z'))).toBe(true);
  });

  it('forgets expired keys', () => {
    const window = new DedupeWindow(1_000);
    window.admit('a', at('2025-01-01T00:00:00Z'));
    window.admit('b', at('2025-01-01T00:00:05Z'));
    expect(window.size).toBe(1);
  });
});

describe('AlertDispatcher', () => {
  it('stores once, delivers to webhooks by severity, suppresses repeats in the window', async () => {
    const store = new StreamDouble();
    const pager = new ChannelDouble('pager', 'critical');
    const chat = new ChannelDouble('chat', 'warning');
    const dispatcher = new AlertDispatcher({ store, channels: [pager, chat], logger, dedupeWindowMs: 60_000 });
    expect(await dispatcher.raise(alert('critical'), at('2025-01-01T00:00:00Z'))).toBe('delivered');
    expect(await dispatcher.raise(alert('critical'), at('2025-01-01T00:00:10Z'))).toBe('suppressed');
    expect(await dispatcher.raise(alert('warning', 'command_rejected:x:y'), at('2025-01-01T00:00:10Z'))).toBe('delivered');
    expect(store.stored).toHaveLength(2);
    expect(pager.delivered.map((a) => a.severity)).toEqual(['critical']);
    expect(chat.delivered.map((a) => a.severity)).toEqual(['critical', 'warning']);
  });

  it('does not notify again when the stream already holds the alert (another alerter)', async () => {
    const store = new StreamDouble();
    const chat = new ChannelDouble('chat', 'info');
    const first = new AlertDispatcher({ store, channels: [chat], logger, dedupeWindowMs: 60_000 });
    const second = new AlertDispatcher({ store, channels: [chat], logger, dedupeWindowMs: 60_000 });
    await first.raise(alert('critical'), at('2025-01-01T00:00:00Z'));
    expect(await second.raise(alert('critical'), at('2025-01-01T00:00:00Z'))).toBe('duplicate');
    expect(chat.delivered).toHaveLength(1);
  });

  it('a failing webhook does not fail the raise, and other webhooks still get it', async () => {
    const store = new StreamDouble();
    const broken = new ChannelDouble('broken', 'info', true);
    const chat = new ChannelDouble('chat', 'info');
    const dispatcher = new AlertDispatcher({ store, channels: [broken, chat], logger, dedupeWindowMs: 60_000 });
    expect(await dispatcher.raise(alert('critical'), at('2025-01-01T00:00:00Z'))).toBe('delivered');
    expect(chat.delivered).toHaveLength(1);
  });

  it('a failed store throws and lets the retry through the dedupe window', async () => {
    const store = new StreamDouble();
    const dispatcher = new AlertDispatcher({ store, channels: [], logger, dedupeWindowMs: 60_000 });
    store.down = true;
    await expect(dispatcher.raise(alert('critical'), at('2025-01-01T00:00:00Z'))).rejects.toThrow('nats unavailable');
    store.down = false;
    expect(await dispatcher.raise(alert('critical'), at('2025-01-01T00:00:01Z'))).toBe('delivered');
  });
});

describe('failure handlers', () => {
  const ctx = { attempt: 1, maxDeliver: 5, signal: new AbortController().signal, logger };
  const verifyFailed = {
    schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', requestId: 'r', occurredAt: '2025-01-01T00:00:00.000Z',
    artifactId: 'a1', checks: [], durationMs: 1, error: { code: 'VERIFY_MISMATCH' as const, message: 'differs', retryable: false },
  };

  it('acks after raising, naks with a delay when the alert could not be stored', async () => {
    const store = new StreamDouble();
    const dispatcher = new AlertDispatcher({ store, channels: [], logger, dedupeWindowMs: 60_000 });
    const clock = () => at('2025-01-01T00:00:00Z');
    store.down = true;
    expect(await handleVerifyFailed(verifyFailed, { dispatcher, clock }, ctx)).toEqual({ type: 'nak', delayMs: DEFAULT_CONSUMER_SETTINGS.backoff.initialSeconds * 1000 });
    store.down = false;
    expect(await handleVerifyFailed(verifyFailed, { dispatcher, clock }, { ...ctx, attempt: 2 })).toEqual({ type: 'ack' });
    expect(store.stored).toHaveLength(1);
  });

  it('acks a non-final backup failure without an alert', async () => {
    const store = new StreamDouble();
    const dispatcher = new AlertDispatcher({ store, channels: [], logger, dedupeWindowMs: 60_000 });
    const event = {
      schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', requestId: 'r', occurredAt: '2025-01-01T00:00:00.000Z',
      kind: 'logical' as const, attempt: 1, final: false, error: { code: 'DUMP_FAILED' as const, message: 'x', retryable: true },
    };
    expect(await handleBackupFailed(event, { dispatcher, clock: () => new Date() }, ctx)).toEqual({ type: 'ack' });
    expect(store.stored).toHaveLength(0);
  });
});
