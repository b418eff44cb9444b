import { describe, expect, it } from 'vitest';
import { readRestoredServerFacts, restoredServerChecks, tableRowCounts, type RestoredServerFacts } from '../src/restored-server.js';
import type { Queryable } from '../src/facts.js';

const promoted: RestoredServerFacts = {
  systemIdentifier: '7300000000000000001', serverVersion: '15.20', timeline: 2, currentLsn: '0/3000200', inRecovery: false, superuser: 'postgres',
};
const expected = { systemIdentifier: '7300000000000000001', stopLsn: '0/3000100' };
const byName = (checks: ReturnType<typeof restoredServerChecks>) => Object.fromEntries(checks.map((check) => [check.name, check.ok]));

describe('restoredServerChecks', () => {
  it('names the same checks for a point-in-time restore and a verification', () => {
    expect(restoredServerChecks(promoted, { ...expected, backupTimeline: 1 }).map((c) => c.name)).toEqual(['recovery:promoted', 'system-identifier', 'wal:consistent', 'timeline:new']);
    expect(restoredServerChecks(promoted, { ...expected, serverVersion: '15.20' }).map((c) => c.name)).toEqual(['recovery:promoted', 'system-identifier', 'server-version', 'wal:consistent']);
  });

  it('passes a promoted server of the same cluster past the backup end on a new timeline', () => {
    expect(restoredServerChecks(promoted, { ...expected, backupTimeline: 1, serverVersion: '15.20' }).every((check) => check.ok)).toBe(true);
  });

  it('fails each check on its own', () => {
    expect(byName(restoredServerChecks({ ...promoted, inRecovery: true }, expected))).toMatchObject({ 'recovery:promoted': false, 'system-identifier': true });
    expect(byName(restoredServerChecks({ ...promoted, systemIdentifier: '1' }, expected))).toMatchObject({ 'system-identifier': false, 'wal:consistent': true });
    expect(byName(restoredServerChecks({ ...promoted, currentLsn: '0/3000000' }, expected))).toMatchObject({ 'wal:consistent': false });
    // LSNs compare as numbers, not text: 0/A0 is past 0/9F.
    expect(byName(restoredServerChecks({ ...promoted, currentLsn: '0/A0' }, { ...expected, stopLsn: '0/9F' }))).toMatchObject({ 'wal:consistent': true });
    expect(byName(restoredServerChecks({ ...promoted, timeline: 1 }, { ...expected, backupTimeline: 1 }))).toMatchObject({ 'timeline:new': false });
    expect(byName(restoredServerChecks(promoted, { ...expected, serverVersion: '15.21' }))).toMatchObject({ 'server-version': false });
  });
});

const answering = (rows: Record<string, unknown>[][]): Queryable & { texts: string[] } => {
  const texts: string[] = [];
  return {
    texts,
    query: <R,>(text: string) => {
      texts.push(text);
      return Promise.resolve({ rows: (rows.shift() ?? []) as R[] });
    },
  } as Queryable & { texts: string[] };
};

describe('reading a restored server', () => {
  it('takes the timeline from the WAL file being written when the last checkpoint is older', async () => {
    const client = answering([[{ sysid: '7', version: '15.20', walfile: '000000030000000000000004', checkpoint_tli: 2, lsn: '0/4000060', recovering: false, superuser: 'pg' }]]);
    expect(await readRestoredServerFacts(client)).toEqual({ systemIdentifier: '7', serverVersion: '15.20', timeline: 3, currentLsn: '0/4000060', inRecovery: false, superuser: 'pg' });
  });

  it('counts the rows of each user table, names quoted', async () => {
    const client = answering([[{ schema: 'public', name: 'we"ird' }], [{ n: '42' }]]);
    expect(await tableRowCounts(client)).toEqual({ 'public.we"ird': 42 });
    expect(client.texts[1]).toBe('SELECT count(*) AS n FROM "public"."we""ird"');
  });
});
