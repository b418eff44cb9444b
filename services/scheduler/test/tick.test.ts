import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { RequestBackup } from '@tidemark/contracts';
import { InMemoryStateStore, runTick, type CommandSender, type PlannedSchedule } from '../src/index.js';

const logger = pino({ enabled: false });
const every5min: PlannedSchedule = {
  key: 'pg.main.often', engine: 'pg', target: 'main', scheduleId: 'often',
  cron: '*/5 * * * *', timezone: 'UTC', kind: 'logical', catchUp: true,
};
const at = (iso: string) => new Date(iso);

/** A command stream double with the same msgId de-duplication the real stream has. */
class RecordingSender implements CommandSender {
  readonly stored: { subject: string; msgId: string; command: RequestBackup }[] = [];
  failNext = 0;
  async send(subject: string, command: RequestBackup, msgId: string) {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('no responders');
    }
    const duplicate = this.stored.some((s) => s.msgId === msgId);
    if (!duplicate) this.stored.push({ subject, msgId, command });
    return { duplicate };
  }
}

describe('runTick', () => {
  it('sets a baseline, then fires each slot once with a slot-derived id', async () => {
    const store = new InMemoryStateStore();
    const sender = new RecordingSender();
    const deps = { store, sender, logger };
    await runTick([every5min], deps, at('2025-01-01T00:02:00Z'));
    expect(sender.stored).toEqual([]);
    await runTick([every5min], deps, at('2025-01-01T00:05:00.003Z'));
    await runTick([every5min], deps, at('2025-01-01T00:05:01Z'));
    expect(sender.stored).toHaveLength(1);
    const [stored] = sender.stored;
    expect(stored?.subject).toBe('backup.requested.pg.main');
    expect(stored?.msgId).toBe('sched:pg:main:often:2025-01-01T00:05:00.000Z');
    expect(stored?.command).toMatchObject({
      requestId: 'sched-pg-main-often-20250101T000500Z', scheduleId: 'often', scheduledFor: '2025-01-01T00:05:00.000Z',
      kind: 'logical', requestedBy: 'scheduler',
    });
    expect((await store.read('pg.main.often'))?.slot).toEqual(at('2025-01-01T00:05:00Z'));
  });

  it('two schedulers sharing state and stream request each slot once', async () => {
    const store = new InMemoryStateStore();
    const sender = new RecordingSender();
    await store.record('pg.main.often', at('2025-01-01T00:00:00Z'), 0);
    const now = at('2025-01-01T00:05:00.001Z');
    const [a, b] = await Promise.all([runTick([every5min], { store, sender, logger }, now), runTick([every5min], { store, sender, logger }, now)]);
    expect(sender.stored.map((s) => s.msgId)).toEqual(['sched:pg:main:often:2025-01-01T00:05:00.000Z']);
    expect([...(a?.fired ?? []), ...(b?.fired ?? [])].filter((f) => !f.duplicate)).toHaveLength(1);
  });

  it('keeps the old slot when the command could not be sent, and fires it on the next pass', async () => {
    const store = new InMemoryStateStore();
    const sender = new RecordingSender();
    await store.record('pg.main.often', at('2025-01-01T00:00:00Z'), 0);
    sender.failNext = 1;
    const failed = await runTick([every5min], { store, sender, logger }, at('2025-01-01T00:05:00Z'));
    expect(failed.failed).toHaveLength(1);
    expect((await store.read('pg.main.often'))?.slot).toEqual(at('2025-01-01T00:00:00Z'));
    await runTick([every5min], { store, sender, logger }, at('2025-01-01T00:05:02Z'));
    expect(sender.stored).toHaveLength(1);
  });

  it('after downtime requests the latest missed slot once, marked as missed', async () => {
    const store = new InMemoryStateStore();
    const sender = new RecordingSender();
    await store.record('pg.main.often', at('2025-01-01T00:00:00Z'), 0);
    await runTick([every5min], { store, sender, logger }, at('2025-01-01T03:07:00Z'));
    await runTick([every5min], { store, sender, logger }, at('2025-01-01T03:08:00Z'));
    expect(sender.stored.map((s) => s.command.scheduledFor)).toEqual(['2025-01-01T03:05:00.000Z']);
    expect(sender.stored[0]?.command.reason).toContain('missed');
  });
});

describe('files schedules', () => {
  it('a schedule with fullRehash asks for a full rehash, others do not', async () => {
    const docs: PlannedSchedule = { ...every5min, key: 'files.docs.weekly', engine: 'files', target: 'docs', scheduleId: 'weekly', kind: 'tree', fullRehash: true };
    const plain: PlannedSchedule = { ...docs, key: 'files.docs.often', scheduleId: 'often', fullRehash: undefined };
    const store = new InMemoryStateStore();
    const sender = new RecordingSender();
    for (const s of [docs, plain]) await store.record(s.key, at('2025-01-01T00:00:00Z'), 0);
    await runTick([docs, plain], { store, sender, logger }, at('2025-01-01T00:05:00.001Z'));
    expect(sender.stored.map((s) => [s.subject, s.command.kind, s.command.fullRehash])).toEqual([
      ['backup.requested.files.docs', 'tree', true],
      ['backup.requested.files.docs', 'tree', undefined],
    ]);
  });
});
