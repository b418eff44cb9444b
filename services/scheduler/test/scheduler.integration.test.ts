// Real NATS: two schedulers on an every-second schedule produce one command per slot, and a
// restarted scheduler fires the latest missed slot once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type JetStreamManager, type NatsConnection } from 'nats';
import { COMMANDS_STREAM, STREAMS, type RequestBackup } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { createLogger, ensureStreams } from '@tidemark/runtime';
import { startNats, storedMessages, type NatsTestServer } from '@tidemark/testkit';
import { KvStateStore, startScheduler, type TickReport } from '../src/index.js';

const logger = createLogger('scheduler-test', { TIDEMARK_LOG_LEVEL: 'warn' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const configWith = (target: string, cron: string) => parseConfig(`
targets:
  - name: ${target}
    engine: pg
    postgres: {}
    schedules: [{ id: often, cron: "${cron}" }]
`, 'test.yaml', {});

const storedCommands = async (jsm: JetStreamManager, subject: string) =>
  (await storedMessages(jsm, COMMANDS_STREAM.name, subject)).map((m) => ({ msgId: m.msgId, command: m.body as RequestBackup }));

describe('scheduler with real NATS', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await nc.jetstreamManager();
    await ensureStreams(jsm, STREAMS);
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('two schedulers produce exactly one command per slot', async () => {
    const config = configWith('twins', '* * * * * *');
    const ctx = { js: nc.jetstream(), logger };
    const a = await startScheduler(config, ctx, { maxSleepMs: 1000 });
    const b = await startScheduler(config, ctx, { maxSleepMs: 1000 });
    await sleep(4500);
    await Promise.all([a.stop(), b.stop()]);

    const commands = await storedCommands(jsm, 'backup.requested.pg.twins');
    const slots = commands.map((c) => c.command.scheduledFor);
    expect(commands.length).toBeGreaterThanOrEqual(3);
    expect(new Set(slots).size).toBe(slots.length);
    for (const c of commands) {
      expect(c.msgId).toBe(`sched:pg:twins:often:${c.command.scheduledFor}`);
      expect(c.command).toMatchObject({ requestedBy: 'scheduler', scheduleId: 'often', kind: 'logical' });
    }
    // Consecutive seconds: no slot was skipped while both ran.
    const times = slots.map((s) => Date.parse(s as string)).sort((x, y) => x - y);
    for (let i = 1; i < times.length; i += 1) expect((times[i] as number) - (times[i - 1] as number)).toBe(1000);
  });

  it('after a restart, fires only the latest slot missed while down, once', async () => {
    const config = configWith('restarted', '* * * * *');
    const js = nc.jetstream();
    const store = await KvStateStore.open(js);
    // The scheduler last fired ten minutes ago and was down since: nine slots were missed.
    const now = Date.now();
    const tenMinutesAgo = new Date(Math.floor(now / 60_000) * 60_000 - 10 * 60_000);
    expect(await store.record('pg.restarted.often', tenMinutesAgo, 0)).toBe(true);

    let firstPass: (report: TickReport) => void = () => {};
    const passed = new Promise<TickReport>((resolve) => (firstPass = resolve));
    const minuteOf = (t: number) => new Date(Math.floor(t / 60_000) * 60_000).toISOString();
    const before = minuteOf(Date.now());
    const scheduler = await startScheduler(config, { js, logger }, { onTick: (r) => firstPass(r) });
    const report = await passed;
    await scheduler.stop();

    // The latest slot at or before the pass (the pass may straddle a minute boundary).
    expect(report.fired).toHaveLength(1);
    const latestMissed = report.fired[0]?.slot.toISOString() as string;
    expect([before, minuteOf(Date.now())]).toContain(latestMissed);
    const commands = await storedCommands(jsm, 'backup.requested.pg.restarted');
    expect(commands.map((c) => c.command.scheduledFor)).toEqual([latestMissed]);
    expect((await store.read('pg.restarted.often'))?.slot.toISOString()).toBe(latestMissed);

    // A second restart in the same minute has nothing left to fire.
    let again: (report: TickReport) => void = () => {};
    const passedAgain = new Promise<TickReport>((resolve) => (again = resolve));
    const restarted = await startScheduler(config, { js, logger }, { onTick: (r) => again(r) });
    const second = await passedAgain;
    await restarted.stop();
    if (minuteOf(Date.now()) === latestMissed) expect(second.fired).toEqual([]);
    expect(new Set((await storedCommands(jsm, 'backup.requested.pg.restarted')).map((c) => c.msgId)).size)
      .toBe((await storedCommands(jsm, 'backup.requested.pg.restarted')).length);
  });
});
