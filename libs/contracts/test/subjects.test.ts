// Subjects are the wire's addresses: a builder that drifts, or a parser that lets a malformed
// command through, breaks every consumer at once.
import { describe, expect, it } from 'vitest';
import { filters, isAlertSubject, isTargetName, parseCommandSubject, subjectMatches, subjects } from '../src/index.js';

describe('subject builders', () => {
  it.each([
    [subjects.backupRequested('pg', 'main'), 'backup.requested.pg.main'],
    [subjects.restoreRequested('qdrant', 'vectors'), 'restore.requested.qdrant.vectors'],
    [subjects.backupStarted('pg', 'main'), 'backup.started.pg.main'],
    [subjects.backupCompleted('pg', 'main'), 'backup.completed.pg.main'],
    [subjects.backupFailed('files', 'docs'), 'backup.failed.files.docs'],
    [subjects.artifactStored('pg', 'main'), 'artifact.stored.pg.main'],
    [subjects.artifactPruned('pg', 'main'), 'artifact.pruned.pg.main'],
    [subjects.verifyPassed('pg', 'main'), 'verify.passed.pg.main'],
    [subjects.verifyFailed('qdrant', 'vectors'), 'verify.failed.qdrant.vectors'],
    [subjects.restoreStarted('pg', 'main'), 'restore.started.pg.main'],
    [subjects.restoreCompleted('pg', 'main'), 'restore.completed.pg.main'],
    [subjects.restoreFailed('pg', 'main'), 'restore.failed.pg.main'],
    [subjects.walArchived('pg', 'main'), 'wal.archived.pg.main'],
    [subjects.walProblem('pg', 'main'), 'wal.problem.pg.main'],
    [subjects.alert('critical', 'wal_gap'), 'alert.critical.wal_gap'],
    [subjects.commandRejected(), 'command.rejected'],
    [subjects.catalogList(), 'catalog.list'],
    [subjects.catalogDescribe(), 'catalog.describe'],
    [subjects.catalogWal(), 'catalog.wal'],
    [subjects.statusWal(), 'status.wal'],
  ])('%s', (built, expected) => {
    expect(built).toBe(expected);
  });

  it('isAlertSubject tells alerts from everything else', () => {
    expect(isAlertSubject(subjects.alert('info', 'backup_missed'))).toBe(true);
    expect(isAlertSubject(subjects.backupFailed('pg', 'main'))).toBe(false);
    expect(isAlertSubject('alerts.x')).toBe(false);
  });
});

describe('target names', () => {
  it.each([
    ['main', true], ['a', true], ['0db', true], ['my_db-2', true], ['a'.repeat(63), true],
    ['', false], ['Main', false], ['-main', false], ['_main', false], ['a.b', false], ['a b', false], ['a*', false], ['a>', false], ['a'.repeat(64), false],
  ])('%j → %s', (name, ok) => {
    expect(isTargetName(name)).toBe(ok);
  });
});

describe('parseCommandSubject', () => {
  it.each([
    ['backup.requested.pg.main', { action: 'backup', engine: 'pg', target: 'main' }],
    ['restore.requested.qdrant.vectors', { action: 'restore', engine: 'qdrant', target: 'vectors' }],
    // files is a known engine; whether it has an agent is the stream layout's business.
    ['backup.requested.files.docs', { action: 'backup', engine: 'files', target: 'docs' }],
  ])('accepts %s', (subject, parsed) => {
    expect(parseCommandSubject(subject)).toEqual(parsed);
  });

  const notACommand = (s: string) => `"${s}" is not a command subject (expected backup.requested.<engine>.<target> or restore.requested.<engine>.<target>)`;
  it.each([
    ['artifact.stored.pg.main', notACommand('artifact.stored.pg.main')],
    ['backup.completed.pg.main', notACommand('backup.completed.pg.main')],
    ['verify.requested.pg.main', notACommand('verify.requested.pg.main')],
    ['', notACommand('')],
    ['backup', notACommand('backup')],
    ['backup.requested.pg', '"backup.requested.pg" must have exactly four tokens: backup.requested.<engine>.<target>'],
    ['restore.requested', '"restore.requested" must have exactly four tokens: restore.requested.<engine>.<target>'],
    ['backup.requested.pg.main.extra', '"backup.requested.pg.main.extra" must have exactly four tokens: backup.requested.<engine>.<target>'],
    ['backup.requested.mysql.main', 'unknown engine "mysql" (known: pg, qdrant, files)'],
    ['restore.requested.PG.main', 'unknown engine "PG" (known: pg, qdrant, files)'],
    ['backup.requested.pg.Main', 'invalid target "Main": target names use lowercase letters, digits, "-" and "_" (at most 63, starting with a letter or digit)'],
    ['backup.requested.pg.', 'invalid target "": target names use lowercase letters, digits, "-" and "_" (at most 63, starting with a letter or digit)'],
    ['backup.requested.pg.*', 'invalid target "*": target names use lowercase letters, digits, "-" and "_" (at most 63, starting with a letter or digit)'],
  ])('refuses %j', (subject, error) => {
    expect(parseCommandSubject(subject)).toEqual({ error });
  });
});

describe('subjectMatches (NATS wildcards)', () => {
  it.each([
    ['backup.requested.pg.*', 'backup.requested.pg.main', true],
    ['backup.requested.pg.*', 'backup.requested.pg.a.b', false],
    ['backup.requested.pg.*', 'backup.requested.pg', false],
    ['backup.requested.>', 'backup.requested.pg.a.b', true],
    ['backup.requested.>', 'backup.requested', false],
    ['*.requested.pg.main', 'restore.requested.pg.main', true],
    ['command.rejected', 'command.rejected', true],
    ['command.rejected', 'command.rejected.x', false],
    ['command.rejected', 'command', false],
  ])('%s against %s → %s', (filter, subject, matches) => {
    expect(subjectMatches(filter, subject)).toBe(matches);
  });
});

describe('filters', () => {
  // Every filter against one subject of every family: each matches its own family and nothing else.
  const sample = {
    backupCommand: subjects.backupRequested('pg', 'main'),
    restoreCommand: subjects.restoreRequested('qdrant', 'vectors'),
    backupStarted: subjects.backupStarted('pg', 'main'),
    backupCompleted: subjects.backupCompleted('pg', 'main'),
    backupFailed: subjects.backupFailed('pg', 'main'),
    artifactStored: subjects.artifactStored('pg', 'main'),
    artifactPruned: subjects.artifactPruned('pg', 'main'),
    verifyPassed: subjects.verifyPassed('pg', 'main'),
    verifyFailed: subjects.verifyFailed('pg', 'main'),
    restoreStarted: subjects.restoreStarted('pg', 'main'),
    restoreCompleted: subjects.restoreCompleted('pg', 'main'),
    restoreFailed: subjects.restoreFailed('pg', 'main'),
    alert: subjects.alert('critical', 'backup_failed'),
    commandRejected: subjects.commandRejected(),
    walArchived: subjects.walArchived('pg', 'main'),
    walProblem: subjects.walProblem('pg', 'main'),
  } as const;
  type Family = keyof typeof sample;

  const rows: ReadonlyArray<readonly [string, string, readonly Family[]]> = [
    ['allBackupCommands', filters.allBackupCommands, ['backupCommand']],
    ['allRestoreCommands', filters.allRestoreCommands, ['restoreCommand']],
    ['backupCommandsFor(pg)', filters.backupCommandsFor('pg'), ['backupCommand']],
    ['restoreCommandsFor(qdrant)', filters.restoreCommandsFor('qdrant'), ['restoreCommand']],
    ['backupStarted', filters.backupStarted, ['backupStarted']],
    ['backupCompleted', filters.backupCompleted, ['backupCompleted']],
    ['backupFailed', filters.backupFailed, ['backupFailed']],
    ['artifactStored', filters.artifactStored, ['artifactStored']],
    ['artifactPruned', filters.artifactPruned, ['artifactPruned']],
    ['verifyPassed', filters.verifyPassed, ['verifyPassed']],
    ['verifyFailed', filters.verifyFailed, ['verifyFailed']],
    ['restoreStarted', filters.restoreStarted, ['restoreStarted']],
    ['restoreCompleted', filters.restoreCompleted, ['restoreCompleted']],
    ['restoreFailed', filters.restoreFailed, ['restoreFailed']],
    ['alerts', filters.alerts, ['alert']],
    ['commandRejected', filters.commandRejected, ['commandRejected']],
    ['walArchived', filters.walArchived, ['walArchived']],
    ['walProblem', filters.walProblem, ['walProblem']],
    ['wal', filters.wal, ['walArchived', 'walProblem']],
  ];

  it.each(rows)('%s (%s) matches exactly %j', (_name, filter, families) => {
    const matched = (Object.keys(sample) as Family[]).filter((family) => subjectMatches(filter, sample[family]));
    expect(matched).toEqual(families);
  });

  it('the per-engine command filters leave other engines alone', () => {
    expect(subjectMatches(filters.backupCommandsFor('pg'), subjects.backupRequested('qdrant', 'main'))).toBe(false);
    expect(subjectMatches(filters.restoreCommandsFor('qdrant'), subjects.restoreRequested('pg', 'main'))).toBe(false);
  });

  it('the table covers every filter', () => {
    const named = new Set(rows.map(([name]) => name.replace(/\(.*\)$/, '')));
    expect(named).toEqual(new Set(Object.keys(filters)));
  });
});
