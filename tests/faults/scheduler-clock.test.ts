// The scheduler's wall clock steps: forward by a day (a suspended VM resumes, NTP corrects a clock
// that was a day behind) and back by an hour (NTP steps a fast clock back). A real nats-server, the
// real timer loop with its KV state and its JetStream sender; only the clock is the test's, so a
// day passes in a few steps. The commands stream is the evidence: one command per slot, by id and
// by count, the missed day collapsed into one catch-up, and nothing fired twice, not even as a
// repeat the stream's duplicate window would have dropped (the scheduler never sends one).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { COMMANDS_STREAM, STREAMS, messageIds, subjects, type RequestBackup } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { createLogger, ensureStreams } from '@tidemark/runtime';
import { eventually, startNats, storedMessages, type NatsTestServer } from '@tidemark/testkit';
import { startScheduler, type RunningScheduler, type TickReport } from '@tidemark/scheduler-service';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The loop's longest sleep: with a stepped clock the loop just polls, so keep it short. */
const POLL_MS = 20;
const PASS_TIMEOUT_MS = 15_000;

interface LogLine { level: string; msg: string; [field: string]: unknown }

/** A wall clock the test steps; the scheduler reads it through its clock option. */
class SteppedClock {
  constructor(public now: number) {}
  readonly read = (): Date => new Date(this.now);
}

/** One scheduler on a stepped clock, with every pass report and log line it produced. */
class ScheduledTarget {
  readonly reports: TickReport[] = [];
  readonly logs: LogLine[] = [];
  private running: RunningScheduler | undefined;

  constructor(readonly target: string, readonly clock: SteppedClock, private readonly nc: NatsConnection) {}

  get subject(): string {
    return subjects.backupRequested('pg', this.target);
  }

  async start(): Promise<void> {
    const config = parseConfig(`
targets:
  - name: ${this.target}
    engine: pg
    postgres: {}
    schedules: [{ id: minutely, cron: "* * * * *" }]
`, 'scheduler-clock.yaml', {});
    const logger = createLogger('scheduler', { TIDEMARK_LOG_LEVEL: 'info' }, {
      write: (line: string) => {
        this.logs.push(JSON.parse(line) as LogLine);
      },
    });
    this.running = await startScheduler(config, { js: this.nc.jetstream(), logger }, { clock: this.clock.read, maxSleepMs: POLL_MS, onTick: (r) => this.reports.push(r) });
  }

  async stop(): Promise<void> {
    await this.running?.stop();
    this.running = undefined;
  }

  /**
   * Sets the clock to `at` and waits for two passes: the first may have read the clock before it
   * was set (an earlier time, already handled, so it does nothing), the second surely read it.
   * Returns what the two did.
   */
  async passAt(at: number): Promise<Pick<TickReport, 'fired' | 'recorded'>> {
    this.clock.now = at;
    const seen = this.reports.length;
    await eventually(() => this.reports.length >= seen + 2, PASS_TIMEOUT_MS, `a scheduler pass at ${new Date(at).toISOString()}`);
    const passes = this.reports.slice(seen, seen + 2);
    return { fired: passes.flatMap((p) => p.fired), recorded: passes.flatMap((p) => p.recorded) };
  }

  /** Every slot the scheduler sent, in order; `duplicate` marks one the stream already held. */
  get sent(): { slot: string; duplicate: boolean }[] {
    return this.reports.flatMap((r) => r.fired.map((f) => ({ slot: f.slot.toISOString(), duplicate: f.duplicate })));
  }

  get failures(): unknown[] {
    return this.reports.flatMap((r) => r.failed.map((f) => f.error));
  }
}

const slotIso = (at: number): string => new Date(at).toISOString();
const slotsFrom = (first: number, count: number): string[] => Array.from({ length: count }, (_, i) => slotIso(first + i * MINUTE));

describe('the scheduler clock jumps (real NATS, the real timer loop and its KV state)', () => {
  let nats: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const targets: ScheduledTarget[] = [];

  const storedCommands = async (t: ScheduledTarget) =>
    (await storedMessages(jsm, COMMANDS_STREAM.name, t.subject)).map((m) => ({ msgId: m.msgId, command: m.body as RequestBackup }));

  /** The stream holds exactly one command per slot in `slots`, each under its slot's message id. */
  async function expectOneCommandPerSlot(t: ScheduledTarget, slots: readonly string[]): Promise<void> {
    const commands = await storedCommands(t);
    expect(commands.map((c) => c.command.scheduledFor)).toEqual(slots);
    expect(commands.map((c) => c.msgId)).toEqual(slots.map((s) => messageIds.scheduledBackup('pg', t.target, 'minutely', new Date(s))));
    expect(new Set(commands.map((c) => c.msgId)).size).toBe(slots.length);
  }

  const newTarget = (name: string, startAt: number): ScheduledTarget => {
    const t = new ScheduledTarget(name, new SteppedClock(startAt), nc);
    targets.push(t);
    return t;
  };

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
  });

  afterAll(async () => {
    await Promise.all(targets.map((t) => t.stop()));
    await nc?.close();
    await nats?.stop();
  });

  it('a day forward: the missed slots collapse into one catch-up, said so, and a restart does not fire it again', async () => {
    const started = Date.now();
    const t0 = Date.parse('2026-03-02T10:00:30Z');
    const t = newTarget('leaping', t0);
    await t.start();
    await eventually(() => t.reports.find((r) => r.recorded.some((x) => x.reason === 'baseline')), PASS_TIMEOUT_MS, 'the first start baseline');

    // Normal operation: two slots, each fired once, just after it.
    await t.passAt(t0 + 30_000 + 10);
    await t.passAt(t0 + 90_000 + 10);
    expect(t.sent.map((s) => s.slot)).toEqual(slotsFrom(t0 + 30_000, 2));

    // The clock steps forward by a day, 20 s past a slot: 1,439 slots (10:03 to the next 10:01)
    // never ran; the latest one fires once, as the catch-up.
    const lastBeforeJump = t0 + 90_000;
    const jumpedTo = t0 + 110_000 + DAY;
    const jump = await t.passAt(jumpedTo);
    const catchUpSlot = lastBeforeJump + DAY;
    expect(jump.fired.map((f) => f.slot.toISOString())).toEqual([slotIso(catchUpSlot)]);
    for (let i = 0; i < 3; i += 1) expect((await t.passAt(jumpedTo + i * 1000)).fired).toEqual([]);

    const catchUp = (await storedCommands(t)).at(-1)?.command;
    expect(catchUp).toMatchObject({ scheduledFor: slotIso(catchUpSlot), requestedBy: 'scheduler', scheduleId: 'minutely' });
    expect(catchUp?.reason).toContain('1439 earlier slots missed');
    const missedWarning = t.logs.find((l) => l.level === 'warn' && l['missed'] === 1439);
    expect(missedWarning).toMatchObject({ schedule: 'pg.leaping.minutely', slot: slotIso(catchUpSlot), since: slotIso(lastBeforeJump) });
    expect(missedWarning?.msg).toContain('1439 slots did not run');

    // A restart right after the catch-up: the recorded slot holds, nothing is sent again.
    await t.stop();
    const before = t.reports.length;
    await t.start();
    await eventually(() => t.reports.length >= before + 3 || undefined, PASS_TIMEOUT_MS, 'three passes after the restart');
    expect(t.reports.slice(before).flatMap((r) => [...r.fired, ...r.recorded])).toEqual([]);

    // The next slot fires on time, once, with nothing missed.
    await t.passAt(catchUpSlot + MINUTE + 10);
    await t.passAt(catchUpSlot + MINUTE + 1000);
    const expected = [...slotsFrom(t0 + 30_000, 2), slotIso(catchUpSlot), slotIso(catchUpSlot + MINUTE)];
    expect(t.sent).toEqual(expected.map((slot) => ({ slot, duplicate: false })));
    await expectOneCommandPerSlot(t, expected);
    expect(t.failures).toEqual([]);
    console.log(`clock a day forward: 1 catch-up for 1439 missed slots, ${expected.length} commands for ${expected.length} slots, 0 repeats sent; ${Date.now() - started} ms`);
  });

  it('an hour back: slots already fired in that hour do not fire again (not even across a restart); the next new one does', async () => {
    const started = Date.now();
    const t0 = Date.parse('2026-03-02T11:00:30Z');
    const firstSlot = t0 + 30_000;
    const t = newTarget('rewound', t0);
    await t.start();
    await eventually(() => t.reports.find((r) => r.recorded.some((x) => x.reason === 'baseline')), PASS_TIMEOUT_MS, 'the first start baseline');

    // An hour of normal operation: 60 slots, 11:01 to 12:00, each fired once just after it.
    for (let i = 0; i < 60; i += 1) await t.passAt(firstSlot + i * MINUTE + 10);
    const hour = slotsFrom(firstSlot, 60);
    expect(t.sent.map((s) => s.slot)).toEqual(hour);

    // The clock steps back by an hour and lives through the same hour again, each slot passed
    // at its own time, with a restart halfway: nothing is sent.
    const sentBefore = t.sent.length;
    const steppedBackTo = firstSlot + 59 * MINUTE + 10 - HOUR;
    for (let i = 0; i < 60; i += 1) {
      if (i === 30) {
        await t.stop();
        await t.start();
      }
      await t.passAt(steppedBackTo + i * MINUTE);
    }
    expect(t.sent.length).toBe(sentBefore);
    const clockWarnings = t.logs.filter((l) => l.level === 'warn' && l['schedule'] === 'pg.rewound.minutely' && typeof l['recordedSlot'] === 'string');
    // One warning per scheduler that saw it (the first one and the restarted one), not one per pass.
    expect(clockWarnings).toHaveLength(2);
    expect(clockWarnings[0]).toMatchObject({ recordedSlot: slotIso(firstSlot + 59 * MINUTE) });
    expect(clockWarnings[0]?.msg).toContain('behind');

    // Past the last fired slot the schedule goes on: 12:01 fires once.
    await t.passAt(firstSlot + 60 * MINUTE + 10);
    await t.passAt(firstSlot + 60 * MINUTE + 1000);
    const expected = [...hour, slotIso(firstSlot + 60 * MINUTE)];
    expect(t.sent).toEqual(expected.map((slot) => ({ slot, duplicate: false })));
    await expectOneCommandPerSlot(t, expected);
    expect(t.failures).toEqual([]);
    console.log(`clock an hour back: 0 of 60 fired slots sent again (one restart in between), ${expected.length} commands for ${expected.length} slots; ${Date.now() - started} ms`);
  });
});
