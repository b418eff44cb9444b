// Reading a recovering server's log (the RTO split, where replay stopped, why it failed) and
// writing its recovery settings. The log samples are PostgreSQL 15's own lines, as a restore in
// services/pg-agent/test/pitr-restore.test.ts wrote them.
import { describe, expect, it } from 'vitest';
import { explainRecoveryFailure, logTail, portWasTaken, parseRecoveryLog, pgTimestampToIso, recoveryTargetSettings, recoveryTimes } from '../src/index.js';

const PROMOTED = `2026-11-22 03:21:00.510 UTC LOG:  redirecting log output to logging collector process
2026-11-22 03:21:00.510 UTC HINT:  Future log output will appear in directory "log".
2026-11-22 03:21:00.510 UTC LOG:  starting PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit
2026-11-22 03:21:00.571 UTC LOG:  database system was interrupted; last known up at 2026-11-22 03:20:45 UTC
2026-11-22 03:21:02.205 UTC LOG:  starting point-in-time recovery to 2026-11-22 03:20:53.28+00
2026-11-22 03:21:03.255 UTC LOG:  restored log file "000000010000000000000002" from archive
2026-11-22 03:21:03.293 UTC LOG:  redo starts at 0/2000028
2026-11-22 03:21:04.110 UTC LOG:  restored log file "000000010000000000000003" from archive
2026-11-22 03:21:05.405 UTC LOG:  restored log file "000000010000000000000004" from archive
2026-11-22 03:21:05.768 UTC LOG:  consistent recovery state reached at 0/2000100
2026-11-22 03:21:05.769 UTC LOG:  recovery stopping before commit of transaction 729, time 2026-11-22 03:20:53.883196+00
2026-11-22 03:21:05.769 UTC LOG:  redo done at 0/40001C8 system usage: CPU: user: 0.00 s, system: 0.00 s, elapsed: 2.47 s
2026-11-22 03:21:05.769 UTC LOG:  last completed transaction was at log time 2026-11-22 03:20:52.77575+00
2026-11-22 03:21:06.690 UTC LOG:  restored log file "000000010000000000000004" from archive
2026-11-22 03:21:07.064 UTC LOG:  selected new timeline ID: 2
2026-11-22 03:21:07.471 UTC LOG:  archive recovery complete
2026-11-22 03:21:07.719 UTC LOG:  database system is ready to accept connections
`;

const UNREACHED = `2026-11-22 04:00:00.100 UTC LOG:  redo starts at 0/2000028
2026-11-22 04:00:00.200 UTC FATAL:  the database system is starting up
tidemark-wal-fetch: 000000010000000000000005: something the script said
2026-11-22 04:00:01.000 UTC LOG:  last completed transaction was at log time 2026-11-22 03:59:00.5+00
2026-11-22 04:00:01.001 UTC FATAL:  recovery ended before configured recovery target was reached
2026-11-22 04:00:01.050 UTC LOG:  startup process (PID 77) exited with exit code 1
`;

describe('the recovery log', () => {
  it('yields the replay window, the stop, the last transaction, the new timeline and readiness', () => {
    const log = parseRecoveryLog(PROMOTED);
    expect(log.redoStartsAt?.toISOString()).toBe('2026-11-22T03:21:03.293Z');
    expect(log.redoDoneAt?.toISOString()).toBe('2026-11-22T03:21:05.769Z');
    expect(log.redoDoneLsn).toBe('0/40001C8');
    expect(log.lastTransactionAt).toBe('2026-11-22T03:20:52.775Z');
    expect(log.stoppedBy).toMatch(/^recovery stopping before commit of transaction 729/);
    expect(log.newTimeline).toBe(2);
    expect(log.readyAt?.toISOString()).toBe('2026-11-22T03:21:07.719Z');
    expect(log.restoredFiles).toBe(4);
    expect(log.fatal).toEqual([]);
  });

  it('splits the RTO: start = spawn → redo starts + redo done → ready; replay = redo starts → redo done', () => {
    const log = parseRecoveryLog(PROMOTED);
    const times = recoveryTimes(log, new Date('2026-11-22T03:21:00.400Z'), new Date('2026-11-22T03:21:08Z'));
    expect(times).toEqual({ replayMs: 2476, startMs: 2893 + 1950 });
    // Without redo lines, everything counts as start.
    expect(recoveryTimes(parseRecoveryLog(''), new Date(1000), new Date(4000))).toEqual({ replayMs: 0, startMs: 3000 });
  });

  it('keeps FATAL lines that explain recovery, not refused connections, and names the failure without quoting the log', () => {
    const log = parseRecoveryLog(UNREACHED);
    expect(log.fatal).toEqual(['recovery ended before configured recovery target was reached']);
    const beyond = explainRecoveryFailure(log, logTail(UNREACHED, 3), '/restores/x', { type: 'time', time: '2026-11-22T04:30:00.000000Z', inclusive: true });
    expect(beyond).toMatchObject({
      code: 'RECOVERY_TARGET_UNREACHABLE',
      message: expect.stringMatching(/^time 2026-11-22T04:30:00.000000Z lies beyond the end of the archive: the archived WAL ends with the last transaction committed at 2026-11-22T03:59:00.500Z\. Choose a target at or before that, or the end of the archive \(--to latest\)/),
    });
    const noSuchPoint = explainRecoveryFailure(log, logTail(UNREACHED, 3), '/restores/x', { type: 'restorePoint', name: 'nosuch' });
    expect(noSuchPoint.code).toBe('RECOVERY_TARGET_UNREACHABLE');
    expect(noSuchPoint.message).toMatch(/^restore point "nosuch" does not exist in the archived WAL after the chosen base backup/);
    for (const error of [beyond, noSuchPoint]) expect(error.message).not.toMatch(/PID 77|LOG:|something the script said|archiving is running|does not exist.*beyond/);
    expect(beyond.message).not.toContain('does not exist');
    const before = parseRecoveryLog('2026-11-22 04:00:01.001 UTC FATAL:  requested recovery stop point is before consistent recovery point\n');
    expect(explainRecoveryFailure(before, '', '/d').code).toBe('RECOVERY_TARGET_UNREACHABLE');
    const missing = parseRecoveryLog('2026-11-22 04:00:01.001 UTC FATAL:  WAL ends before end of online backup\n');
    expect(explainRecoveryFailure(missing, '', '/d').code).toBe('WAL_MISSING');
    const other = parseRecoveryLog('2026-11-22 04:00:01.001 UTC FATAL:  could not write lock file "postmaster.pid": No space left on device\n');
    expect(explainRecoveryFailure(other, 'tail', '/d')).toMatchObject({ code: 'RESTORE_FAILED', message: 'postgres exited while recovering in /d: could not write lock file "postmaster.pid": No space left on device' });
    expect(explainRecoveryFailure(parseRecoveryLog(''), 'tail', '/d')).toMatchObject({ code: 'RESTORE_FAILED', message: 'postgres exited while recovering in /d: tail' });
  });

  it('reads PostgreSQL timestamps with any offset', () => {
    expect(pgTimestampToIso('2026-11-22 03:20:52.77575+00')).toBe('2026-11-22T03:20:52.775Z');
    expect(pgTimestampToIso('2026-11-22 05:20:52+02')).toBe('2026-11-22T03:20:52.000Z');
    expect(pgTimestampToIso('2026-11-22 08:50:52.1+05:30')).toBe('2026-11-22T03:20:52.100Z');
    expect(pgTimestampToIso('yesterday')).toBeUndefined();
  });
});

describe('recovery settings', () => {
  it('names one target, follows the newest timeline and promotes', () => {
    const tail = ["recovery_target_timeline = 'latest'", "recovery_target_action = 'promote'"];
    expect(recoveryTargetSettings({ type: 'time', time: '2026-11-22T10:15:00.000Z', inclusive: true })).toEqual([
      "recovery_target_time = '2026-11-22 10:15:00.000000+00'", 'recovery_target_inclusive = on', ...tail,
    ]);
    expect(recoveryTargetSettings({ type: 'lsn', lsn: '0/3000060', inclusive: false })).toEqual(["recovery_target_lsn = '0/3000060'", 'recovery_target_inclusive = off', ...tail]);
    expect(recoveryTargetSettings({ type: 'restorePoint', name: "it's" })).toEqual(["recovery_target_name = 'it''s'", ...tail]);
    expect(recoveryTargetSettings({ type: 'latest' })).toEqual(tail);
    expect(recoveryTargetSettings({ type: 'immediate' })).toEqual(["recovery_target = 'immediate'", ...tail]);
  });
});

describe('portWasTaken', () => {
  it('reads a lost port race in the server\'s own words (the point-in-time restore and the verifier both retry on it)', () => {
    expect(portWasTaken('LOG:  could not bind IPv4 address "127.0.0.1": Address already in use')).toBe(true);
    expect(portWasTaken('WARNING:  could not create listen socket for "127.0.0.1"')).toBe(true);
    expect(portWasTaken('FATAL:  could not create any TCP/IP sockets')).toBe(true);
    expect(portWasTaken('FATAL:  data directory "/x" has invalid permissions')).toBe(false);
  });
});
