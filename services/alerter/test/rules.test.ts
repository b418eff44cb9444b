import { describe, expect, it } from 'vitest';
import { Alert, type BackupFailed, type CommandRejected, type RestoreFailed, type VerifyFailed } from '@tidemark/contracts';
import {
  atLeast, backupFailedAlert, backupMissedAlert, commandRejectedAlert, restoreFailedAlert, toSlackMessage, verifyFailedAlert,
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
    expect(alert?.summary).toMatch(/failed after 3 attempts/);
    expect(() => Alert.parse(alert)).not.toThrow();
  });

  it('restore failed is critical', () => {
    const event: RestoreFailed = { ...scope, artifactId: 'a1', database: 'app_restore', error: { code: 'RESTORE_FAILED', message: 'pg_restore exited 1', retryable: false } };
    expect(restoreFailedAlert(event)).toMatchObject({ severity: 'critical', kind: 'restore_failed', dedupeKey: 'restore_failed:pg:main:req-1' });
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
});
