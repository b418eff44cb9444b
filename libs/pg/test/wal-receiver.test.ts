// The WAL name helpers, and the supervised pg_receivewal against a real PostgreSQL 15: closed
// segments arrive in order with no gap across a SIGKILLed receiver and a server restart, and
// stop() leaves no process behind.
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, makeTempDir, removeTempDir, startPostgres, type PostgresServer, processesMentioning } from '@tidemark/testkit';
import {
  findGaps, formatLsn, formatSegmentName, historyFileName, isSegmentName, nextSegment, parseLsn, parseWalFileName,
  segmentNameForLsn, segmentStartLsn, timelinesWithoutHistory, WAL_SEGMENT_SIZE,
} from '../src/wal-names.js';
import { pgToolPath, RECEIVER_PID_FILE, startWalReceiver, type WalReceiver } from '../src/index.js';

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

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

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
    await eventually(() => received.includes(last), 15_000, `segment ${last}`);

    expect(received.length).toBeGreaterThanOrEqual(3);
    expectConsecutive();
    expect(received[0]).toBe(failedOnce);
    expect(maxInFlight).toBe(1);
    for (const name of received) expect(sizes.get(name)).toBe(WAL_SEGMENT_SIZE);
    // Handed-over segments are removed once pg_receivewal has moved past them.
    await server.query('INSERT INTO filler VALUES (0, $1)', ['opens the next segment']);
    await eventually(async () => (await readdir(dir)).filter(isSegmentName).length === 0, 15_000, 'the handed-over segments to be removed');
    await eventually(() => partials.length > 0 && receiver?.status().lastFlushLsn !== undefined, 15_000, 'a partial segment and the flush lsn');
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
    await eventually(() => {
      const status = receiver?.status();
      return status?.running === true && status.restarts >= 1 && status.pid !== pid;
    }, 15_000, 'a new pg_receivewal');
    const last = await closeSegment();
    await eventually(() => received.includes(last), 15_000, `segment ${last}`);
    expect(received.length).toBeGreaterThan(before);
    expect(received).toContain(opened);
    expectConsecutive();
  });

  it('resumes after a server restart without a gap', async () => {
    const restartsBefore = receiver?.status().restarts as number;
    await closeSegment();
    await server.restart?.();
    const last = await closeSegment();
    await eventually(() => received.includes(last), 20_000, `segment ${last} after the restart`);
    expect(receiver?.status().restarts).toBeGreaterThan(restartsBefore);
    expectConsecutive();
  });

  it('stops a pg_receivewal an earlier (killed) run left streaming into its directory', async () => {
    // The agent died with SIGKILL: its child keeps streaming and holds the slot. Play that orphan.
    const orphanDir = join(root, 'orphaned');
    await mkdir(orphanDir, { mode: 0o700 });
    const [passwd] = (await readFile('/etc/passwd', 'utf8')).split('\n').filter((line) => line.startsWith('postgres:'));
    const [, , uid, gid] = (passwd as string).split(':');
    await chown(orphanDir, Number(uid), Number(gid));
    await server.query(`SELECT pg_create_physical_replication_slot('tidemark_orphan', true)`);
    const orphan = spawn(pgToolPath('pg_receivewal'), ['-D', orphanDir, '-S', 'tidemark_orphan', '--no-loop'], {
      uid: Number(uid),
      gid: Number(gid),
      stdio: 'ignore',
      env: { ...process.env, PGHOST: server.host, PGPORT: String(server.port), PGUSER: server.user, PGPASSWORD: server.password, PGDATABASE: 'postgres' },
    });
    const orphanExit = new Promise<number | null>((resolve) => orphan.once('exit', (code) => resolve(code)));
    await writeFile(join(orphanDir, RECEIVER_PID_FILE), `${orphan.pid}\n`);
    const slotPid = async () => (await server.query<{ pid: number | null }>(`SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = 'tidemark_orphan'`))[0]?.pid ?? null;
    await eventually(async () => (await slotPid()) !== null, 15_000, 'the orphan to hold the slot');
    const holder = await slotPid();

    const ownLogs: string[] = [];
    const quiet = { info: (d: object, m: string) => ownLogs.push(`info ${m} ${JSON.stringify(d)}`), warn: (d: object, m: string) => ownLogs.push(`warn ${m} ${JSON.stringify(d)}`), error: () => undefined };
    const second = await startWalReceiver({ ...server.connection(), passwordEnv: PASSWORD_ENV }, { slot: 'tidemark_orphan', dir: orphanDir, logger: quiet, onSegment: async () => undefined, restartDelayMs: { initial: 100, max: 500 } });
    try {
      expect(await orphanExit).toBe(0); // SIGINT: it flushed and exited cleanly
      expect(ownLogs.some((line) => line.includes('left by an earlier run'))).toBe(true);
      await eventually(async () => {
        const pid = await slotPid();
        return pid !== null && pid !== holder && second.status().running;
      }, 15_000, 'the new receiver to hold the slot');
      expect(second.status().restarts).toBe(0);
      expect(Number((await readFile(join(orphanDir, RECEIVER_PID_FILE), 'utf8')).trim())).toBe(second.status().pid);
    } finally {
      await second.stop();
    }
    expect(await processesMentioning(orphanDir)).toEqual([]);
    await server.query(`SELECT pg_drop_replication_slot('tidemark_orphan')`);
  });

  it('skips ahead, keeping the leftovers, when the server has removed the wal it would resume from', async () => {
    const lostDir = join(root, 'lost');
    const got: string[] = [];
    const ownLogs: string[] = [];
    const quiet = {
      info: (d: object, m: string) => ownLogs.push(`info ${m} ${JSON.stringify(d)}`),
      warn: (d: object, m: string) => ownLogs.push(`warn ${m} ${JSON.stringify(d)}`),
      error: (d: object, m: string) => ownLogs.push(`error ${m} ${JSON.stringify(d)}`),
    };
    const conn = { ...server.connection(), passwordEnv: PASSWORD_ENV };
    const options = {
      slot: 'tidemark_lost',
      dir: lostDir,
      logger: quiet,
      statusIntervalSeconds: 1,
      scanIntervalMs: 300,
      restartDelayMs: { initial: 100, max: 500 },
      onSegment: async (_path: string, name: string) => {
        got.push(name);
      },
    };
    const first = await startWalReceiver(conn, options);
    const before = await closeSegment();
    await eventually(() => got.includes(before), 15_000, `segment ${before}`);
    await first.stop();
    // The slot is dropped (by an operator, or invalidated): checkpoints recycle what the spool would resume from.
    await server.query(`SELECT pg_drop_replication_slot('tidemark_lost')`);
    for (let i = 0; i < 3; i += 1) await closeSegment();
    // The other receiver's slot must have moved on too, or it keeps the segments alive.
    await eventually(async () => {
      const rows = await server.query<{ behind: boolean }>('SELECT bool_or(restart_lsn < pg_current_wal_lsn()) AS behind FROM pg_replication_slots');
      return rows[0]?.behind !== true;
    }, 15_000, 'every slot to catch up');
    await server.query('CHECKPOINT');
    const second = await startWalReceiver(conn, options);
    try {
      await eventually(() => ownLogs.some((line) => line.includes('has removed wal this receiver still needed')), 15_000, 'the receiver to skip the lost wal').catch(async (error: unknown) => {
        const slots = await server.query('SELECT slot_name, active, restart_lsn::text, wal_status, pg_current_wal_lsn()::text AS cur FROM pg_replication_slots');
        const wal = await server.query('SELECT name FROM pg_ls_waldir() ORDER BY name');
        throw new Error(`${(error as Error).message}; its log:\n${ownLogs.join('\n')}\n${JSON.stringify(slots)}\n${JSON.stringify(wal)}\nspool ${JSON.stringify(await readdir(lostDir))} before ${before}`);
      });
      const after = await closeSegment();
      await eventually(() => got.includes(after), 15_000, `segment ${after} after the skip`).catch(async (error: unknown) => {
        const slots = await server.query('SELECT slot_name, active, restart_lsn::text, wal_status, pg_current_wal_lsn()::text AS cur FROM pg_replication_slots');
        throw new Error(`${(error as Error).message}; got ${JSON.stringify(got)}; its log:\n${ownLogs.join('\n')}\n${JSON.stringify(slots)}\nspool ${JSON.stringify(await readdir(lostDir))}`);
      });
      expect(findGaps(got).length).toBeGreaterThan(0); // the gap is real, and the gap detector's to report
      const aside = (await readdir(lostDir)).filter((name) => name.startsWith('.lost-'));
      expect(aside).toHaveLength(1);
      expect(await readdir(join(lostDir, aside[0] as string))).toContain(before);
    } finally {
      await second.stop();
    }
    await server.query(`SELECT pg_drop_replication_slot('tidemark_lost')`);
  });

  it('removes a zero-filled partial segment a full disk left half pre-allocated, and streams on', async () => {
    const unpaddedDir = join(root, 'unpadded');
    const got: string[] = [];
    const ownLogs: string[] = [];
    const quiet = { info: () => undefined, warn: (d: object, m: string) => ownLogs.push(`warn ${m} ${JSON.stringify(d)}`), error: () => undefined };
    const conn = { ...server.connection(), passwordEnv: PASSWORD_ENV };
    const options = { slot: 'tidemark_unpadded', dir: unpaddedDir, logger: quiet, restartDelayMs: { initial: 100, max: 500 }, onSegment: async (_path: string, name: string) => void got.push(name) };
    const first = await startWalReceiver(conn, options);
    const before = await closeSegment();
    await eventually(() => got.includes(before), 15_000, `segment ${before}`);
    await first.stop();
    // What ENOSPC leaves: the next segment's file, padded with zeros only part of the way.
    const newest = [before, ...(await readdir(unpaddedDir)).map((name) => name.replace('.partial', '')).filter(isSegmentName)].sort().at(-1) as string;
    const unpadded = `${nextSegment(newest)}.partial`;
    await writeFile(join(unpaddedDir, unpadded), Buffer.alloc(3 * 1024 * 1024));
    const second = await startWalReceiver(conn, options);
    try {
      expect(await readdir(unpaddedDir)).not.toContain(unpadded);
      expect(ownLogs.some((line) => line.includes('could not finish pre-allocating') && line.includes(unpadded))).toBe(true);
      const after = await closeSegment();
      await eventually(() => got.includes(after), 15_000, `segment ${after} after the removal`);
      expect(second.status().restarts).toBe(0);
    } finally {
      await second.stop();
    }
    await server.query(`SELECT pg_drop_replication_slot('tidemark_unpadded')`);
  });

  it('never removes a short partial segment that holds anything but zeros, at start or at a restart', async () => {
    const keptDir = join(root, 'kept');
    await mkdir(keptDir, { recursive: true });
    const ownLogs: string[] = [];
    const quiet = { info: () => undefined, warn: (d: object, m: string) => ownLogs.push(`warn ${m} ${JSON.stringify(d)}`), error: () => undefined };
    const conn = { ...server.connection(), passwordEnv: PASSWORD_ENV };
    // Ahead of the server: pg_receivewal would resume there, cannot, exits and is restarted. (Some
    // WAL first, so that the current position is not a segment's first byte, which names the previous one.)
    await server.query("SELECT pg_logical_emit_message(false, 'tidemark', 'kept')");
    const [row] = await server.query<{ name: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
    const short = `${nextSegment((row as { name: string }).name)}.partial`;
    const content = Buffer.alloc(3 * 1024 * 1024);
    content.write('not only zeros: this may be wal', 0);
    await writeFile(join(keptDir, short), content);
    const kept = await startWalReceiver(conn, { slot: 'tidemark_kept', dir: keptDir, logger: quiet, restartDelayMs: { initial: 100, max: 200 }, onSegment: async () => undefined });
    try {
      await eventually(() => kept.status().restarts >= 2, 15_000, 'a restart of pg_receivewal');
      expect((await readFile(join(keptDir, short))).equals(content)).toBe(true);
      expect(ownLogs.filter((line) => line.includes('could not finish pre-allocating'))).toEqual([]);
    } finally {
      await kept.stop();
    }
    await server.query(`SELECT pg_drop_replication_slot('tidemark_kept')`);
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
