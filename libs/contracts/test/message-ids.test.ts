// The Nats-Msg-Id strings are pinned literally: a stream keeps its duplicate window across an
// upgrade, so a changed spelling would let a repeat through. And no two events may share an id,
// or the stream would silently drop the second one.
import { describe, expect, it } from 'vitest';
import { messageIds } from '../src/index.js';

const SYSID = '7412345678901234567';
const SHA = 'ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12';
const ARTIFACT = '20261122T020000Z-1a2b3c4d5e';
const SLOT = new Date('2026-11-22T02:00:00Z');

type Builder = keyof typeof messageIds;

describe('messageIds: the strings earlier releases published', () => {
  const rows: ReadonlyArray<readonly [Builder, string, string]> = [
    ['scheduledBackup', messageIds.scheduledBackup('pg', 'main', 'nightly', SLOT), 'sched:pg:main:nightly:2026-11-22T02:00:00.000Z'],
    ['backupStarted', messageIds.backupStarted(ARTIFACT, 2), `started:${ARTIFACT}:2`],
    ['backupFailed', messageIds.backupFailed({ artifactId: ARTIFACT, requestId: 'r-1' }, 3), `failed:${ARTIFACT}:3`],
    ['backupFailed', messageIds.backupFailed({ artifactId: undefined, requestId: 'r-1' }, 1), 'failed:r-1:1'],
    ['artifactStored', messageIds.artifactStored(ARTIFACT), `stored:${ARTIFACT}`],
    ['backupCompleted', messageIds.backupCompleted(ARTIFACT), `completed:${ARTIFACT}`],
    ['verification', messageIds.verification(ARTIFACT), `verify:${ARTIFACT}`],
    ['artifactPruned', messageIds.artifactPruned(ARTIFACT), `pruned:${ARTIFACT}`],
    ['restoreStarted', messageIds.restoreStarted('r-1', 1), 'restore-started:r-1:1'],
    ['restoreCompleted', messageIds.restoreCompleted('r-1'), 'restore-completed:r-1'],
    ['restoreFailed', messageIds.restoreFailed('r-1'), 'restore-failed:r-1'],
    ['commandRejected', messageIds.commandRejected('backup.requested.pg.main', 42), 'rejected:backup.requested.pg.main:42'],
    ['commandRejected', messageIds.commandRejected('backup.requested.pg.main', SHA), `rejected:backup.requested.pg.main:${SHA}`],
    ['verifyFailedAlert', messageIds.verifyFailedAlert('pg', 'main', ARTIFACT), `verify_failed:pg:main:${ARTIFACT}`],
    ['backupFailedAlert', messageIds.backupFailedAlert('qdrant', 'vectors', 'r-1'), 'backup_failed:qdrant:vectors:r-1'],
    ['restoreFailedAlert', messageIds.restoreFailedAlert('pg', 'main', 'r-1'), 'restore_failed:pg:main:r-1'],
    ['backupIncompleteAlert', messageIds.backupIncompleteAlert('files', 'docs', ARTIFACT), `backup_incomplete:files:docs:${ARTIFACT}`],
    ['commandRejectedAlert', messageIds.commandRejectedAlert('backup.requested.pg.main', 'COMMAND_INVALID'), 'command_rejected:backup.requested.pg.main:COMMAND_INVALID'],
    ['backupMissedAlert', messageIds.backupMissedAlert('pg', 'main', SLOT), 'backup_missed:pg:main:2026-11-22T02:00:00.000Z'],
    ['walProblemAlert', messageIds.walProblemAlert('wal_gap', 'pg', 'main', SYSID, '000000010000000000000003'), `wal_gap:pg:main:${SYSID}:000000010000000000000003`],
    ['walProblemAlert', messageIds.walProblemAlert('wal_lagging', 'pg', 'main', undefined, 'lag'), 'wal_lagging:pg:main:-:lag'],
    ['walSegmentArchived', messageIds.walSegmentArchived(SYSID, '000000010000000000000003'), `wal:${SYSID}:000000010000000000000003`],
    ['walPartialArchived', messageIds.walPartialArchived(SYSID, '000000010000000000000003.partial', { endLsn: '0/3001000' }), `wal:${SYSID}:000000010000000000000003.partial:0/3001000`],
    ['walPartialArchived', messageIds.walPartialArchived(SYSID, '000000010000000000000003.partial', { sha256: SHA }), `wal:${SYSID}:000000010000000000000003.partial:ab12cd34ef56ab12`],
    ['walHistoryArchived', messageIds.walHistoryArchived(SYSID, '00000002.history', SHA), `wal:${SYSID}:00000002.history:ab12cd34ef56ab12`],
    ['walReceiverProblem', messageIds.walReceiverProblem('main', 'slot_growth', 481_234), 'wal-problem:main:slot_growth:481234'],
    ['walArchiveProblem', messageIds.walArchiveProblem('pg', 'main', { systemIdentifier: SYSID, problem: 'gap', key: '000000010000000000000003' }, 493_000), `wal-problem:pg:main:${SYSID}:gap:000000010000000000000003:493000`],
  ];

  it.each(rows)('%s → %s', (_builder, id, expected) => {
    expect(id).toBe(expected);
  });

  it('the table covers every builder', () => {
    expect(new Set(rows.map(([builder]) => builder))).toEqual(new Set(Object.keys(messageIds)));
  });
});

describe('messageIds: two different events never share an id', () => {
  // Ids of events that must all be stored, chosen to be as alike as the inputs allow: the same
  // artifact and request in every builder, a target named like an engine, request ids that hold
  // ":" and end in digits, attempts that read like a request id's tail.
  const ids: readonly string[] = [
    ...['r', 'r:1', 'js:12', ARTIFACT].flatMap((request) => [
      messageIds.restoreStarted(request, 1),
      messageIds.restoreStarted(request, 11),
      messageIds.restoreCompleted(request),
      messageIds.restoreFailed(request),
      messageIds.backupFailed({ requestId: request }, 1),
      messageIds.backupFailedAlert('pg', 'main', request),
      messageIds.restoreFailedAlert('pg', 'main', request),
    ]),
    ...[ARTIFACT, `${ARTIFACT}-x`].flatMap((artifact) => [
      messageIds.backupStarted(artifact, 1),
      messageIds.backupStarted(artifact, 2),
      messageIds.backupFailed({ artifactId: artifact, requestId: 'other' }, 2),
      messageIds.artifactStored(artifact),
      messageIds.backupCompleted(artifact),
      messageIds.verification(artifact),
      messageIds.artifactPruned(artifact),
      messageIds.verifyFailedAlert('pg', 'main', artifact),
      messageIds.backupIncompleteAlert('files', 'main', artifact),
    ]),
    messageIds.scheduledBackup('pg', 'main', 'nightly', SLOT),
    messageIds.scheduledBackup('pg', 'main', 'nightly', new Date(SLOT.getTime() + 1000)),
    messageIds.scheduledBackup('qdrant', 'main', 'nightly', SLOT),
    messageIds.commandRejected('backup.requested.pg.main', 1),
    messageIds.commandRejected('backup.requested.pg.main', 11),
    messageIds.commandRejected('restore.requested.pg.main', 1),
    messageIds.commandRejectedAlert('backup.requested.pg.main', 'COMMAND_INVALID'),
    messageIds.commandRejectedAlert('backup.requested.pg.main', 'TARGET_UNKNOWN'),
    messageIds.backupMissedAlert('pg', 'main', SLOT),
    messageIds.walProblemAlert('wal_gap', 'pg', 'main', SYSID, 'x'),
    messageIds.walProblemAlert('wal_timeline', 'pg', 'main', SYSID, 'x'),
    messageIds.walSegmentArchived(SYSID, '000000010000000000000003'),
    messageIds.walPartialArchived(SYSID, '000000010000000000000003.partial', { endLsn: '0/3001000' }),
    messageIds.walPartialArchived(SYSID, '000000010000000000000003.partial', { endLsn: '0/3002000' }),
    messageIds.walHistoryArchived(SYSID, '00000002.history', SHA),
    // A target named "pg" makes the agent's problem id start like the storage check's.
    messageIds.walReceiverProblem('pg', 'gap', 7),
    messageIds.walReceiverProblem('pg', 'lagging', 7),
    messageIds.walReceiverProblem('main', 'gap', 7),
    messageIds.walArchiveProblem('pg', 'pg', { systemIdentifier: SYSID, problem: 'gap', key: '7' }, 7),
    messageIds.walArchiveProblem('pg', 'main', { systemIdentifier: SYSID, problem: 'gap', key: '7' }, 7),
  ];

  it('every id in the table is distinct', () => {
    const seen = new Map<string, number>();
    const repeats = ids.filter((id, i) => seen.has(id) || (seen.set(id, i), false));
    expect(repeats).toEqual([]);
  });

  it('each builder owns its first token, except the WAL families, which differ in shape', () => {
    const buildersOf = new Map<string, Set<Builder>>();
    for (const [builder, id] of sampleOfEveryBuilder()) {
      const token = id.slice(0, id.indexOf(':'));
      buildersOf.set(token, (buildersOf.get(token) ?? new Set()).add(builder));
    }
    const shared = [...buildersOf].filter(([, builders]) => builders.size > 1).map(([token, builders]) => [token, [...builders].sort()]);
    expect(shared).toEqual([
      // A segment's file name has no suffix and nothing after it; a partial's and a history file's carry theirs.
      ['wal', ['walHistoryArchived', 'walPartialArchived', 'walSegmentArchived']],
      // Four tokens (pg-agent) against seven (the storage check), whatever the target is called.
      ['wal-problem', ['walArchiveProblem', 'walReceiverProblem']],
    ]);
    expect(messageIds.walSegmentArchived(SYSID, '000000010000000000000003').split(':')).toHaveLength(3);
    expect(messageIds.walReceiverProblem('pg', 'gap', 1).split(':')).toHaveLength(4);
    expect(messageIds.walArchiveProblem('pg', 'pg', { systemIdentifier: SYSID, problem: 'gap', key: 'k' }, 1).split(':')).toHaveLength(7);
  });
});

/** One id per builder; the WAL alert kinds all come from walProblemAlert. */
function sampleOfEveryBuilder(): ReadonlyArray<readonly [Builder, string]> {
  return [
    ['scheduledBackup', messageIds.scheduledBackup('pg', 'main', 's', SLOT)],
    ['backupStarted', messageIds.backupStarted(ARTIFACT, 1)],
    ['backupFailed', messageIds.backupFailed({ requestId: 'r' }, 1)],
    ['artifactStored', messageIds.artifactStored(ARTIFACT)],
    ['backupCompleted', messageIds.backupCompleted(ARTIFACT)],
    ['verification', messageIds.verification(ARTIFACT)],
    ['artifactPruned', messageIds.artifactPruned(ARTIFACT)],
    ['restoreStarted', messageIds.restoreStarted('r', 1)],
    ['restoreCompleted', messageIds.restoreCompleted('r')],
    ['restoreFailed', messageIds.restoreFailed('r')],
    ['commandRejected', messageIds.commandRejected('s', 1)],
    ['verifyFailedAlert', messageIds.verifyFailedAlert('pg', 'main', ARTIFACT)],
    ['backupFailedAlert', messageIds.backupFailedAlert('pg', 'main', 'r')],
    ['restoreFailedAlert', messageIds.restoreFailedAlert('pg', 'main', 'r')],
    ['backupIncompleteAlert', messageIds.backupIncompleteAlert('files', 'main', ARTIFACT)],
    ['commandRejectedAlert', messageIds.commandRejectedAlert('s', 'COMMAND_INVALID')],
    ['backupMissedAlert', messageIds.backupMissedAlert('pg', 'main', SLOT)],
    ...(['wal_gap', 'wal_timeline', 'wal_slot_growth', 'wal_lagging'] as const).map(
      (kind) => ['walProblemAlert', messageIds.walProblemAlert(kind, 'pg', 'main', SYSID, 'x')] as const,
    ),
    ['walSegmentArchived', messageIds.walSegmentArchived(SYSID, 'f')],
    ['walPartialArchived', messageIds.walPartialArchived(SYSID, 'f.partial', { endLsn: '0/1' })],
    ['walHistoryArchived', messageIds.walHistoryArchived(SYSID, 'f.history', SHA)],
    ['walReceiverProblem', messageIds.walReceiverProblem('main', 'gap', 1)],
    ['walArchiveProblem', messageIds.walArchiveProblem('pg', 'main', { systemIdentifier: SYSID, problem: 'gap', key: 'k' }, 1)],
  ];
}
