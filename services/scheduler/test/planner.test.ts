import { describe, expect, it } from 'vitest';
import { latestSlotAtOrBefore, nextSlot, nextWakeUp, planFires, slotsBetween, type PlannedSchedule } from '../src/index.js';

const nightly: PlannedSchedule = {
  key: 'pg.main.nightly', engine: 'pg', target: 'main', scheduleId: 'nightly',
  cron: '0 2 * * *', timezone: 'UTC', kind: 'logical', catchUp: true,
};
const at = (iso: string) => new Date(iso);
const state = (entries: Record<string, string>) => new Map(Object.entries(entries).map(([k, v]) => [k, at(v)]));

describe('cron arithmetic', () => {
  it('gives the next slot strictly after a time', () => {
    expect(nextSlot(nightly, at('2025-01-01T01:00:00Z'))).toEqual(at('2025-01-01T02:00:00Z'));
    expect(nextSlot(nightly, at('2025-01-01T02:00:00Z'))).toEqual(at('2025-01-02T02:00:00Z'));
  });

  it('counts a slot equal to now as due', () => {
    expect(latestSlotAtOrBefore(nightly, at('2025-01-01T02:00:00Z'))).toEqual(at('2025-01-01T02:00:00Z'));
    expect(latestSlotAtOrBefore(nightly, at('2025-01-01T01:59:59Z'))).toEqual(at('2024-12-31T02:00:00Z'));
  });

  it('lists slots in a range with a limit', () => {
    const slots = slotsBetween({ cron: '*/15 * * * *', timezone: 'UTC' }, at('2025-01-01T00:00:00Z'), at('2025-01-01T01:00:00Z'), 10);
    expect(slots.map((d) => d.toISOString().slice(11, 16))).toEqual(['00:15', '00:30', '00:45', '01:00']);
  });
});

describe('planFires', () => {
  it('records now as the baseline on a first start and does not fire past slots', () => {
    const now = at('2025-01-01T10:00:00Z');
    expect(planFires([nightly], new Map(), now)).toEqual([{ type: 'record', schedule: nightly, slot: now, reason: 'baseline' }]);
  });

  it('does nothing between slots', () => {
    expect(planFires([nightly], state({ 'pg.main.nightly': '2025-01-01T02:00:00Z' }), at('2025-01-01T23:59:59Z'))).toEqual([]);
  });

  it('fires the slot that just became due', () => {
    const actions = planFires([nightly], state({ 'pg.main.nightly': '2025-01-01T02:00:00Z' }), at('2025-01-02T02:00:00.010Z'));
    expect(actions).toEqual([{ type: 'fire', schedule: nightly, slot: at('2025-01-02T02:00:00Z'), late: false, missed: 0 }]);
  });

  it('after downtime fires only the latest missed slot, once', () => {
    const down = state({ 'pg.main.nightly': '2025-01-01T02:00:00Z' });
    const now = at('2025-01-05T12:00:00Z');
    const actions = planFires([nightly], down, now);
    expect(actions).toEqual([{ type: 'fire', schedule: nightly, slot: at('2025-01-05T02:00:00Z'), late: true, missed: 3 }]);
    // Once recorded, the same moment plans nothing more.
    expect(planFires([nightly], state({ 'pg.main.nightly': '2025-01-05T02:00:00Z' }), now)).toEqual([]);
  });

  it('counts the slots a forward clock jump skipped, even when it lands right on a slot', () => {
    const minutely: PlannedSchedule = { ...nightly, cron: '* * * * *' };
    const actions = planFires([minutely], state({ 'pg.main.nightly': '2025-01-01T10:02:00Z' }), at('2025-01-02T10:02:20Z'));
    expect(actions).toEqual([{ type: 'fire', schedule: minutely, slot: at('2025-01-02T10:02:00Z'), late: false, missed: 1439 }]);
  });

  it('holds, firing nothing, while the clock is behind the recorded slot', () => {
    const recorded = state({ 'pg.main.nightly': '2025-01-02T02:00:00Z' });
    expect(planFires([nightly], recorded, at('2025-01-02T01:00:00Z'))).toEqual([{ type: 'hold', schedule: nightly, recordedSlot: at('2025-01-02T02:00:00Z') }]);
    // Within the due tolerance it is ordinary timer jitter, not a clock that stepped back.
    expect(planFires([nightly], recorded, at('2025-01-02T01:59:30Z'))).toEqual([]);
  });

  it('skips (records without firing) a missed slot when catchUp is off, but still fires a due one', () => {
    const strict = { ...nightly, catchUp: false };
    const last = state({ 'pg.main.nightly': '2025-01-01T02:00:00Z' });
    expect(planFires([strict], last, at('2025-01-05T12:00:00Z'))).toEqual([
      { type: 'record', schedule: strict, slot: at('2025-01-05T02:00:00Z'), reason: 'skipped' },
    ]);
    expect(planFires([strict], last, at('2025-01-02T02:00:30Z'))).toEqual([
      { type: 'fire', schedule: strict, slot: at('2025-01-02T02:00:00Z'), late: false, missed: 0 },
    ]);
  });

  it('plans every schedule independently', () => {
    const hourly: PlannedSchedule = { ...nightly, key: 'qdrant.vectors.hourly', engine: 'qdrant', target: 'vectors', scheduleId: 'hourly', cron: '0 * * * *' };
    const now = at('2025-01-02T02:00:00Z');
    const actions = planFires([nightly, hourly], state({ 'pg.main.nightly': '2025-01-01T02:00:00Z' }), now);
    expect(actions.map((a) => [a.type, a.schedule.key])).toEqual([['fire', 'pg.main.nightly'], ['record', 'qdrant.vectors.hourly']]);
  });

  it('evaluates cron in the schedule timezone across a DST change', () => {
    const berlin: PlannedSchedule = { ...nightly, cron: '0 3 * * *', timezone: 'Europe/Berlin' };
    // 03:00 Berlin is 02:00Z in winter (CET) and 01:00Z in summer (CEST); DST began 2025-03-30.
    expect(nextSlot(berlin, at('2025-03-29T00:00:00Z'))).toEqual(at('2025-03-29T02:00:00Z'));
    expect(nextSlot(berlin, at('2025-03-29T02:00:00Z'))).toEqual(at('2025-03-30T01:00:00Z'));
    const actions = planFires([berlin], state({ 'pg.main.nightly': '2025-03-29T02:00:00Z' }), at('2025-03-30T01:00:00Z'));
    expect(actions).toEqual([{ type: 'fire', schedule: berlin, slot: at('2025-03-30T01:00:00Z'), late: false, missed: 0 }]);
  });

  it('fires a slot in the skipped hour of spring-forward exactly once', () => {
    // 02:30 does not exist in Berlin on 2025-03-30; the day still gets one slot.
    const skipped: PlannedSchedule = { ...nightly, cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    const slots = slotsBetween(skipped, at('2025-03-29T12:00:00Z'), at('2025-03-31T12:00:00Z'), 10);
    expect(slots).toHaveLength(2);
    expect(new Set(slots.map((d) => d.toISOString().slice(0, 10)))).toEqual(new Set(['2025-03-30', '2025-03-31']));
  });
});

describe('nextWakeUp', () => {
  it('is the earliest next slot of all schedules', () => {
    const hourly = { ...nightly, key: 'x', cron: '0 * * * *' };
    expect(nextWakeUp([nightly, hourly], at('2025-01-01T00:30:00Z'))).toEqual(at('2025-01-01T01:00:00Z'));
    expect(nextWakeUp([], at('2025-01-01T00:30:00Z'))).toBeUndefined();
  });
});
