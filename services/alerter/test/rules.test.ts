import { describe, expect, it } from 'vitest';
import { Alert, type BackupCompleted, type BackupFailed, type CommandRejected, type RestoreFailed, type VerifyFailed, type WalProblem } from '@tidemark/contracts';
import {
  atLeast, backupFailedAlert, backupIncompleteAlert, backupMissedAlert, commandRejectedAlert, restoreFailedAlert, toSlackMessage, verifyFailedAlert, walProblemAlert,
} from '../src/index.js';

const scope = { schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', requestId: 'req-1', occurredAt: '2025-01-01T02:10:00.000Z' };
const verifyFailed: VerifyFailed = {
  ...scope, artifactId: 'pg-main-20250101T020000Z', durationMs: 1200,
  checks: [{ name: 'row-counts', ok: true }, { name: 'vector-probes', ok: false, detail: 'top-k differs' }],
  error: { code: 'VERIFY_MISMATCH', message: 'the restored data differs from the manifest', retryable: false },
};
const backupFailed = (final: boolean): BackupFailed => ({
  ...scope, kind: 'logical', attempt: 3, final, error: { code: 'SOURCE_UNAVAILABLE', message: 'connection refused', retryable: true },
});

describe('alert rules', () => {
  it('verify failed is critical and keyed by artifact', () => {
    const alert = verifyFailedAlert(verifyFailed);
    expect(alert).toMatchObject({ severity: 'critical', kind: 'verify_failed', artifactId: verifyFailed.artifactId, dedupeKey: 'verify_failed:pg:main:pg-main-20250101T020000Z' });
    expect(alert.summary).toContain('pg/main');
    expect(alert.summary).toContain('vector-probes');
    expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('only a final backup failure alerts', () => {
    expect(backupFailedAlert(backupFailed(false))).toBeUndefined();
    const alert = backupFailedAlert(backupFailed(true));
    expect(alert).toMatchObject({ severity: 'critical', kind: 'backup_failed', dedupeKey: 'backup_failed:pg:main:req-1' });
    expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('a final backup failure reads as the agent wrote it: given up, after how many attempts, what to do; never "will be retried"', () => {
    const message = 'gave up after 5 attempts: pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433). '
      + 'Fix the cause and request the backup again (`tidemark backup pg main`).';
    const alert = backupFailedAlert({ ...backupFailed(true), attempt: 5, error: { code: 'SOURCE_UNAVAILABLE', message, retryable: true } });
    expect(alert?.summary).toBe(`Backup of pg/main failed (SOURCE_UNAVAILABLE): ${message}`);
    expect(alert?.summary).not.toMatch(/will be retried/);
  });

  it('restore failed is critical', () => {
    const event: RestoreFailed = { ...scope, artifactId: 'a1', database: 'app_restore', error: { code: 'RESTORE_FAILED', message: 'pg_restore exited 1', retryable: false } };
    expect(restoreFailedAlert(event)).toMatchObject({ severity: 'critical', kind: 'restore_failed', dedupeKey: 'restore_failed:pg:main:req-1' });
    expect(restoreFailedAlert(event).summary).toMatch(/^Restore of pg\/main from a1 into database app_restore failed/);
  });

  it('a restore that failed names where it went in its engine\'s words: a data directory, a collection, a directory', () => {
    const error = { code: 'RESTORE_FAILED' as const, message: 'disk full', retryable: false };
    expect(restoreFailedAlert({ ...scope, database: '/var/lib/tidemark/work/restores/main-20261207', error }).summary).toMatch(/^Restore of pg\/main into data directory \/var\/lib\/tidemark\/work\/restores\/main-20261207 failed/);
    expect(restoreFailedAlert({ ...scope, engine: 'qdrant', database: 'docs_restore', error }).summary).toMatch(/^Restore of qdrant\/main into collection docs_restore failed/);
    expect(restoreFailedAlert({ ...scope, engine: 'files', database: '/srv/restore', error }).summary).toMatch(/^Restore of files\/main into \/srv\/restore failed/);
  });

  it('a rejected command is a warning, one per subject and error code', () => {
    const event: CommandRejected = {
      schemaVersion: 1, occurredAt: scope.occurredAt, subject: 'backup.requested.mysql.x', sizeBytes: 2, payloadPreview: '{}',
      error: { code: 'COMMAND_UNKNOWN_SUBJECT', message: 'unknown engine "mysql"', retryable: false },
    };
    const alert = commandRejectedAlert(event);
    expect(alert).toMatchObject({ severity: 'warning', kind: 'command_rejected', dedupeKey: 'command_rejected:backup.requested.mysql.x:COMMAND_UNKNOWN_SUBJECT' });
    expect(alert.engine).toBeUndefined();
    expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('backup missed is critical and keyed by window start', () => {
    const alert = backupMissedAlert({
      engine: 'pg', target: 'main', windowStart: new Date('2025-01-01T00:00:00Z'), windowMs: 48 * 3600_000,
      lastSuccess: new Date('2025-01-01T00:00:00Z'), evidence: 'verified', now: new Date('2025-01-03T00:01:00Z'),
    });
    expect(alert).toMatchObject({ severity: 'critical', kind: 'backup_missed', dedupeKey: 'backup_missed:pg:main:2025-01-01T00:00:00.000Z' });
    expect(alert.summary).toContain('No verified backup of pg/main within 2 days');
    expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('turns WAL archive problems into alerts that say what to do, keyed by the problem itself', () => {
    const wal = { schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', occurredAt: scope.occurredAt, systemIdentifier: '7300000000000000001' };
    const gap: WalProblem = {
      ...wal, problem: 'gap', missing: ['000000010000000000000005', '000000010000000000000006'], missingCount: 2,
      summary: '2 WAL segments missing from the archive of pg/main (cluster 7300000000000000001) between … and …, the first 000000010000000000000005: recovery cannot replay across the gap',
    };
    const gapAlert = walProblemAlert(gap);
    expect(gapAlert).toMatchObject({
      severity: 'critical', kind: 'wal_gap', engine: 'pg', target: 'main',
      dedupeKey: 'wal_gap:pg:main:7300000000000000001:000000010000000000000005',
      details: { problem: 'gap', missingCount: 2, missing: gap.missing },
    });
    expect(gapAlert.summary).toMatch(/^WAL archive of pg\/main: 2 WAL segments missing/);
    expect(gapAlert.summary).toContain('Take a new base backup now (tidemark backup pg main --kind base)');
    expect(gapAlert.summary).toContain('into or across the gap is impossible');
    expect(() => Alert.parse(gapAlert)).not.toThrow();
    // The same gap an hour later is the same alert; another gap is another.
    expect(walProblemAlert({ ...gap, occurredAt: '2025-01-01T03:10:00.000Z' }).dedupeKey).toBe(gapAlert.dedupeKey);
    expect(walProblemAlert({ ...gap, missing: ['000000010000000000000009'] }).dedupeKey).not.toBe(gapAlert.dedupeKey);

    const timeline = walProblemAlert({ ...wal, problem: 'timeline', summary: 'timeline 2 has WAL but its history file 00000002.history is missing', missing: ['00000002.history'], details: { timeline: 2 } });
    expect(timeline).toMatchObject({ severity: 'critical', kind: 'wal_timeline', dedupeKey: 'wal_timeline:pg:main:7300000000000000001:timeline-2' });
    expect(timeline.summary).toContain('restart it after a failover');

    const slot = walProblemAlert({ ...wal, problem: 'slot_growth', summary: 'slot tidemark_main is inactive', retainedBytes: 6 * 1024 ** 3, limitBytes: 4 * 1024 ** 3, details: { slot: 'tidemark_main' } });
    expect(slot).toMatchObject({ severity: 'warning', kind: 'wal_slot_growth', dedupeKey: 'wal_slot_growth:pg:main:7300000000000000001:tidemark_main' });
    expect(slot.summary).toContain('(6144 MiB held, limit 4096 MiB)');

    const lag = walProblemAlert({ ...wal, problem: 'lagging', summary: 'the archive is 900 s behind', lagSeconds: 900, limitSeconds: 300 });
    expect(lag).toMatchObject({ severity: 'warning', kind: 'wal_lagging', dedupeKey: 'wal_lagging:pg:main:7300000000000000001:lag' });
    expect(lag.summary).toContain('(900 s behind, limit 300 s)');
    const spool = walProblemAlert({ ...wal, problem: 'spool_full', summary: 'the WAL spool has 3.0 MiB free', details: { spoolDir: '/var/lib/tidemark/wal/main', freeBytes: 3 * 1024 ** 2 } });
    expect(spool).toMatchObject({ severity: 'critical', kind: 'wal_spool_full', dedupeKey: 'wal_spool_full:pg:main:7300000000000000001:spool' });
    expect(spool.summary).toContain('Free space on /var/lib/tidemark/wal/main');
    expect(spool.summary).toContain('archiving resumes by itself');
    // An agent that did not say where its spool is: the alert still says where to look.
    const spoolSomewhere = walProblemAlert({ ...wal, problem: 'spool_full', summary: 'the WAL spool is full' });
    expect(spoolSomewhere.summary).toContain("Free space on the pg-agent's WAL spool (pg.workDir)");
    expect(spoolSomewhere.dedupeKey).toBe(spool.dedupeKey);
    for (const alert of [timeline, slot, lag, spool, spoolSomewhere]) expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('orders severities', () => {
    expect(atLeast('critical', 'warning')).toBe(true);
    expect(atLeast('warning', 'warning')).toBe(true);
    expect(atLeast('info', 'warning')).toBe(false);
  });

  it('formats a Slack-compatible message', () => {
    const message = toSlackMessage(verifyFailedAlert(verifyFailed));
    expect(message.text).toMatch(/^:rotating_light: \[CRITICAL\] verify failed pg\/main: /);
    expect(message.blocks).toHaveLength(2);
    expect(JSON.stringify(message.blocks)).toContain('VERIFY_MISMATCH');
  });

  it('a backup completed with problems is a warning naming the target and the first paths with their problem; none without problems', () => {
    const completed: BackupCompleted = {
      ...scope, engine: 'files', target: 'models', kind: 'tree', artifactId: '20250101T020000Z-abc', storedBytes: 1000, durationMs: 500,
      problemsCount: 7,
      problems: [
        { path: 'blobs/sha256-1f2e', problem: 'digest_mismatch', detail: 'content hashes to sha256:9a8b' },
        { path: 'docs/locked.pdf', problem: 'unreadable', detail: 'EACCES' },
      ],
    };
    const alert = backupIncompleteAlert(completed)!;
    expect(alert).toMatchObject({ severity: 'warning', kind: 'backup_incomplete', engine: 'files', target: 'models', dedupeKey: 'backup_incomplete:files:models:20250101T020000Z-abc' });
    expect(alert.summary).toContain('files/models');
    expect(alert.summary).toContain('7 paths were not stored');
    expect(alert.summary).toContain('"blobs/sha256-1f2e" (digest mismatch: content hashes to sha256:9a8b)');
    expect(alert.summary).toContain('"docs/locked.pdf" (unreadable: EACCES); and 5 more');
    expect(() => Alert.parse(alert)).not.toThrow();
    expect(backupIncompleteAlert({ ...completed, problemsCount: 0, problems: [] })).toBeUndefined();
    expect(backupIncompleteAlert({ ...scope, kind: 'logical', artifactId: 'a', storedBytes: 1, durationMs: 1 })).toBeUndefined();
  });
});
