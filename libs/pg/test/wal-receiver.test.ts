// The WAL name helpers, and the supervised pg_receivewal against a real PostgreSQL 15: closed
// segments arrive in order with no gap across a SIGKILLed receiver and a server restart, and
// stop() leaves no process behind.
import { chmod, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir, startPostgres, type PostgresServer } from '@tidemark/testkit';
import {
  findGaps, formatLsn, formatSegmentName, historyFileName, isSegmentName, nextSegment, parseLsn, parseWalFileName,
  segmentNameForLsn, segmentStartLsn, timelinesWithoutHistory, WAL_SEGMENT_SIZE,
} from '../src/wal-names.js';
import { startWalReceiver, type WalReceiver } from '../src/index.js';

describe('wal names', () => {
  it('parses and formats segments, partials and history files', () => {
    expect(parseWalFileName('0000000100000002000000FF')).toEqual({ kind: 'segment', timeline: 1, log: 2, seg: 255, partial: false });
    expect(parseWalFileName('0000000A0000000000000003.partial')).toEqual({ kind: 'segment', timeline: 10, log: 0, seg: 3, partial: true });
    expect(parseWalFileName('00000002.history')).toEqual({ kind: 'history', timeline: 2 });
    for (const bad of ['000000010000000000000100', '000000000000000000000001', '0000000100000000000000a1', '00000001000000000000000', '000000010000000000000001.00000028.backup', 'x.partial']) {
      expect(parseWalFileName(bad), bad).toBeUndefined();
    }
    expect(formatSegmentName({ timeline: 1, log: 2, seg: 255 })).toBe('0000000100000002000000FF');
    expect(formatSegmentName({ timeline: 3, log: 0, seg: 1 }, { partial: true })).toBe('000000030000000000000001.partial');
    expect(historyFileName(16)).toBe('00000010.history');
    expect(isSegmentName('000000010000000000000001')).toBe(true);
    expect(isSegmentName('000000010000000000000001.partial')).toBe(false);
    expect(isSegmentName('00000002.history')).toBe(false);
  });

  it('steps to the next segment, across a log boundary, dropping .partial', () => {
    expect(nextSegment('000000010000000000000001')).toBe('000000010000000000000002');
    expect(nextSegment('0000000100000000000000FF')).toBe('000000010000000100000000');
    expect(nextSegment('000000020000000300000004.partial')).toBe('000000020000000300000005');
    expect(() => nextSegment('00000002.history')).toThrow(/not a wal segment/);
  });

  it('finds the segments missing between consecutive ones of a timeline', () => {
    expect(findGaps([])).toEqual([]);
    expect(findGaps(['000000010000000000000001', '000000010000000000000002', '000000010000000000000003'])).toEqual([]);
    expect(findGaps(['000000010000000000000005', '000000010000000000000001', '000000010000000000000004'])).toEqual([
      '000000010000000000000002',
      '000000010000000000000003',
    ]);
    expect(findGaps(['0000000100000000000000FE', '000000010000000100000001'])).toEqual(['0000000100000000000000FF', '000000010000000100000000']);
    // Partial and history files are ignored; nothing is reported across a timeline switch.
    expect(findGaps(['000000010000000000000003', '000000010000000000000004.partial', '00000002.history', '000000020000000000000004', '000000020000000000000006'])).toEqual([
      '000000020000000000000005',
    ]);
    expect(findGaps(['000000010000000000000001', '0000000100000000000000FF'], 3)).toHaveLength(3);
  });

  it('reports timelines that have segments but no history file', () => {
    expect(timelinesWithoutHistory(['000000010000000000000001', '00000002.history', '000000020000000000000002', '000000030000000000000003'])).toEqual([3]);
    expect(timelinesWithoutHistory(['000000020000000000000002'])).toEqual([]);
    expect(timelinesWithoutHistory([])).toEqual([]);
  });

  it('maps lsns to segments and back', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(segmentNameForLsn(1, '0/3000000')).toBe('000000010000000000000003');
    expect(segmentNameForLsn(2, '1/FFFFFFFF')).toBe('0000000200000001000000FF');
    expect(segmentStartLsn('000000010000000100000002')).toBe('1/2000000');
    expect(() => parseLsn('nope')).toThrow(/not a PostgreSQL LSN/);
  });
});

const PASSWORD_ENV = 'TM_WAL_TEST_PGPASSWORD';

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Processes whose command line mentions `text` (to prove nothing was left behind). */
async function processesMentioning(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(entry));
  }
  return found;
}

describe('wal receiver (real postgresql)', () => {
  let server: PostgresServer;
  let root: string;
  let dir: string;
  let receiver: WalReceiver | undefined;
  const received: string[] = [];
  const partials: string[] = [];
  const sizes = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  let failNext = true;
  let failedOnce: string | undefined;
  const logs: string[] = [];

  /** Writes some WAL and closes the segment; returns the closed segment's name. */
  const closeSegment = async (): Promise<string> => {
    await server.query('INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    const rows = await server.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return (rows[0] as { name: string }).name;
  };

  const expectConsecutive = () => {
    expect([...received].sort()).toEqual(received);
    expect(findGaps(received)).toEqual([]);
    for (let i = 1; i < received.length; i += 1) expect(received[i]).toBe(nextSegment(received[i - 1] as string));
  };

  beforeAll(async () => {
    server = await startPostgres({ settings: { wal_level: 'replica', max_wal_senders: '4', max_replication_slots: '4' } });
    process.env[PASSWORD_ENV] = server.password;
    await server.query('CREATE TABLE filler (id int, body text)');
    root = await makeTempDir('tidemark-wal-');
    await chmod(root, 0o711); // pg_receivewal runs as postgres and must reach dir
    dir = join(root, 'wal');
  });

  afterAll(async () => {
    await receiver?.stop();
    await server?.stop();
    if (root) await removeTempDir(root);
    delete process.env[PASSWORD_ENV];
  });

  it('hands closed segments over in order, one at a time, and removes them only after', async () => {
    const log = (level: string) => (details: object, message: string) => {
      logs.push(`${level} ${message} ${JSON.stringify(details)}`);
      if (process.env['TM_WAL_TEST_DEBUG']) console.log(new Date().toISOString(), level, message, JSON.stringify(details));
    };
    const silent = { info: log('info'), warn: log('warn'), error: log('error') };
    receiver = await startWalReceiver(
      { ...server.connection(), passwordEnv: PASSWORD_ENV },
      {
        slot: 'tidemark_test',
        dir,
        statusIntervalSeconds: 1,
        restartDelayMs: { initial: 100, max: 1000 },
        scanIntervalMs: 500,
        logger: silent,
        onSegment: async (path, name) => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          try {
            sizes.set(name, (await stat(path)).size);
            await new Promise((resolve) => setImmediate(resolve));
            if (failNext) {
              // A failed hand-over keeps the file and is retried before anything later.
              failNext = false;
              failedOnce = name;
              throw new Error('storage is down');
            }
            received.push(name);
          } finally {
            inFlight -= 1;
          }
        },
        onPartial: async (_path, name) => {
          partials.push(name);
        },
      },
    );
    const slots = await server.query<{ slot_type: string }>(`SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'tidemark_test'`);
    expect(slots).toEqual([{ slot_type: 'physical' }]);

    let last = '';
    for (let i = 0; i < 3; i += 1) last = await closeSegment();
    logs.push(`closed up to ${last}`);
    if (process.env['TM_WAL_TEST_DEBUG']) console.log(new Date().toISOString(), 'closed', last);
    await waitFor(`segment ${last}`, () => received.includes(last));

    expect(received.length).toBeGreaterThanOrEqual(3);
    expectConsecutive();
    expect(received[0]).toBe(failedOnce);
    expect(maxInFlight).toBe(1);
    for (const name of received) expect(sizes.get(name)).toBe(WAL_SEGMENT_SIZE);
    // Handed-over segments are removed once pg_receivewal has moved past them.
    await server.query('INSERT INTO filler VALUES (0, $1)', ['opens the next segment']);
    await waitFor('the handed-over segments to be removed', async () => (await readdir(dir)).filter(isSegmentName).length === 0);
    await waitFor('a partial segment and the flush lsn', () => partials.length > 0 && receiver?.status().lastFlushLsn !== undefined);
    expect(partials.every((name) => name.endsWith('.partial'))).toBe(true);
    const status = receiver.status();
    expect(status).toMatchObject({ running: true, restarts: 0, lastSegment: last });
    expect(parseLsn(status.lastFlushLsn as string)).toBeGreaterThanOrEqual(parseLsn(segmentStartLsn(nextSegment(last))));
  });

  it('restarts pg_receivewal after SIGKILL without missing a segment', async () => {
    const pid = receiver?.status().pid as number;
    expect(pid).toBeGreaterThan(0);
    const before = received.length;
    const opened = await closeSegment(); // WAL in flight while it dies
    process.kill(pid, 'SIGKILL');
    await waitFor('a new pg_receivewal', () => {
      const status = receiver?.status();
      return status?.running === true && status.restarts >= 1 && status.pid !== pid;
    });
    const last = await closeSegment();
    await waitFor(`segment ${last}`, () => received.includes(last));
    expect(received.length).toBeGreaterThan(before);
    expect(received).toContain(opened);
    expectConsecutive();
  });

  it('resumes after a server restart without a gap', async () => {
    const restartsBefore = receiver?.status().restarts as number;
    await closeSegment();
    await server.restart?.();
    const last = await closeSegment();
    await waitFor(`segment ${last} after the restart`, () => received.includes(last), 20_000);
    expect(receiver?.status().restarts).toBeGreaterThan(restartsBefore);
    expectConsecutive();
  });

  it('stops cleanly and leaves no process behind', async () => {
    const pid = receiver?.status().pid as number;
    expect(isAlive(pid)).toBe(true);
    await receiver?.stop();
    await receiver?.stop(); // idempotent
    expect(isAlive(pid)).toBe(false);
    expect(receiver?.status()).toMatchObject({ running: false, pid: undefined });
    expect(await processesMentioning(dir)).toEqual([]);
    // SIGINT, not SIGTERM: pg_receivewal flushed and exited with code 0.
    expect(logs.filter((line) => line.startsWith('info pg_receivewal stopped'))).toEqual(['info pg_receivewal stopped {"slot":"tidemark_test","code":0,"signal":null}']);
  });
});
