import { describe, expect, it } from 'vitest';
import { subjects, type ErrorInfo } from '@tidemark/contracts';
import { backupFollower, restoreFollower, type FollowedEvent } from '../src/commands/follow.js';

const scope = { schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', occurredAt: '2025-06-01T12:00:00Z' };
const mine = { ...scope, requestId: 'req-1' };
const sha = 'a'.repeat(64);
const ours = subjects.backupRequested('pg', 'main');
const err: ErrorInfo = { code: 'DUMP_FAILED', message: 'pg_dump exited 1', retryable: true };

const started: FollowedEvent = { type: 'backup.started', event: { ...mine, kind: 'logical', artifactId: 'art-1', agentId: 'pg-agent-1', attempt: 1 } };
const stored = (verify: boolean): FollowedEvent => ({ type: 'artifact.stored', event: { ...mine, kind: 'logical', artifactId: 'art-1', manifestKey: 'k', storedBytes: 2048, sha256: sha, verify } });
// The verifier's events name the artifact; their requestId may be the verifier's own.
const passed: FollowedEvent = { type: 'verify.passed', event: { ...scope, requestId: 'verifier-x', artifactId: 'art-1', checks: [{ name: 'rows', ok: true }], durationMs: 1500 } };
const failedVerify: FollowedEvent = {
  type: 'verify.failed',
  event: { ...scope, requestId: 'verifier-x', artifactId: 'art-1', checks: [{ name: 'rows', ok: false }, { name: 'probe', ok: true }], durationMs: 10, error: { code: 'VERIFY_MISMATCH', message: 'row counts differ', retryable: false } },
};

describe('errors in CLI terms', () => {
  it('a restore failure names the flag, not the message field', () => {
    const f = restoreFollower('req-1', subjects.restoreRequested('pg', 'main'));
    const error: ErrorInfo = {
      code: 'RESTORE_TARGET_EXISTS', retryable: false,
      message: 'database app exists; restore into another database or set overwrite: true (the old one is kept as app_pre_restore_<time>)',
    };
    expect(f.step({ type: 'restore.failed', event: { ...mine, error } }).line).toBe(
      'restore failed: RESTORE_TARGET_EXISTS: database app exists; restore into another database or add --overwrite (the old one is kept as app_pre_restore_<time>)',
    );
    const missing: ErrorInfo = { code: 'ARTIFACT_NOT_FOUND', retryable: false, message: 'artifact x of pg target "main" is not committed; list artifacts with the catalog' };
    expect(f.step({ type: 'restore.failed', event: { ...mine, error: missing } }).line).toBe(
      'restore failed: ARTIFACT_NOT_FOUND: artifact x of pg target "main" is not committed; list artifacts with `tidemark list pg main`',
    );
  });
});

describe('backupFollower', () => {
  it('follows a backup to verification and exits 0', () => {
    const f = backupFollower('req-1', ours);
    expect(f.matches(passed)).toBe(false); // not ours until we know the artifact
    expect(f.step(started)).toMatchObject({ line: 'started: logical backup art-1 on pg-agent-1 (attempt 1)', artifactId: 'art-1' });
    const storedStep = f.step(stored(true));
    expect(storedStep.line).toContain('stored: art-1, 2.0 KiB');
    expect(storedStep.exitCode).toBeUndefined();
    expect(f.matches(passed)).toBe(true);
    expect(f.step(passed)).toEqual({ line: 'verified: 1 checks passed in 1.5s', exitCode: 0, outcome: 'verified', artifactId: 'art-1' });
  });

  it('ends at artifact.stored when verification is not required', () => {
    expect(backupFollower('req-1', 's').step(stored(false))).toMatchObject({ exitCode: 0, outcome: 'stored' });
  });

  it('keeps waiting through a retried failure and exits 1 on the final one', () => {
    const f = backupFollower('req-1', 's');
    const failure = (final: boolean): FollowedEvent => ({ type: 'backup.failed', event: { ...mine, kind: 'logical', error: err, attempt: final ? 3 : 1, final } });
    expect(f.step(failure(false))).toEqual({ line: 'attempt 1 failed: DUMP_FAILED: pg_dump exited 1' });
    expect(f.step(failure(true))).toMatchObject({ line: 'backup failed: DUMP_FAILED: pg_dump exited 1', exitCode: 1, error: err });
  });

  it('exits 1 on a failed verification naming the failing checks', () => {
    const f = backupFollower('req-1', 's');
    f.step(stored(true));
    expect(f.matches(failedVerify)).toBe(true);
    expect(f.step(failedVerify)).toMatchObject({ line: 'verification failed: VERIFY_MISMATCH: row counts differ (failed checks: rows)', exitCode: 1 });
  });

  it('ignores other requests and takes rejections of our subject', () => {
    const f = backupFollower('req-1', ours);
    expect(f.matches({ ...started, event: { ...started.event, requestId: 'someone-else' } } as FollowedEvent)).toBe(false);
    const rejection = (subject: string, extra: object = {}): FollowedEvent => ({
      type: 'command.rejected',
      event: { schemaVersion: 1, occurredAt: scope.occurredAt, subject, error: { code: 'COMMAND_INVALID', message: 'bad', retryable: false }, sizeBytes: 3, payloadPreview: '...', ...extra },
    });
    expect(f.matches(rejection(subjects.backupRequested('pg', 'other')))).toBe(false);
    expect(f.matches(rejection(ours))).toBe(true);
    expect(f.matches(rejection(ours, { streamSequence: 4, payloadPreview: 'someone else' }))).toBe(false);
    expect(f.matches(rejection(ours, { streamSequence: 4, payloadPreview: '..req-1..' }))).toBe(true);
    expect(f.step(rejection(ours))).toMatchObject({ line: 'rejected: COMMAND_INVALID: bad', exitCode: 1, outcome: 'rejected' });
  });
});

describe('restoreFollower', () => {
  it('exits 0 on completion and 1 on failure', () => {
    const f = restoreFollower('req-1', 's');
    expect(f.step({ type: 'restore.started', event: { ...mine, artifactId: 'art-1', database: 'main_restore', agentId: 'a' } }).line).toBe('started: restoring art-1 into main_restore on a');
    expect(f.step({ type: 'restore.completed', event: { ...mine, artifactId: 'art-1', database: 'main', durationMs: 2000, previousDatabaseKeptAs: 'main_old' } })).toMatchObject({
      line: 'restored: art-1 into main in 2.0s; the previous database is kept as main_old', exitCode: 0,
    });
    expect(f.step({ type: 'restore.failed', event: { ...mine, error: { code: 'RESTORE_FAILED', message: 'pg_restore exited 1', retryable: false } } })).toMatchObject({ exitCode: 1 });
  });
});
