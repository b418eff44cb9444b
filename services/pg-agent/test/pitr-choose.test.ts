// Choosing the base backup a point-in-time restore starts from (in-memory storage, made-up
// manifests), the UTC default for times without an offset, and the logical restore ignoring base
// backups.
import { describe, expect, it } from 'vitest';
import { MANIFEST_VERSION, recoveryTargetOf, type Manifest, type PgBaseSourceFacts } from '@tidemark/contracts';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { chooseBaseBackup, reaches } from '../src/restore/choose-base-backup.js';
import { pickArtifact } from '../src/restore/logical.js';

const SYSID = '7300000000000000001';

function facts(stoppedAt: string, stopLsn: string, systemIdentifier = SYSID): PgBaseSourceFacts {
  return {
    label: 'x', startLsn: '0/1000028', checkpointLsn: '0/1000060', stopLsn, startTimeline: 1, stopTimeline: 1,
    startedAt: new Date(Date.parse(stoppedAt) - 60_000).toISOString(), stoppedAt, serverVersion: '15.20', serverVersionNum: 150020,
    systemIdentifier, walSegmentSize: 16 * 1024 * 1024, pgvectorVersion: null, backupManifest: { bytes: 100 },
  };
}

function manifest(id: string, kind: 'base' | 'logical', createdAt: string, source: Record<string, unknown>): Manifest {
  return {
    manifestVersion: MANIFEST_VERSION, id, engine: 'pg', target: 'main', kind, format: kind === 'base' ? 'pg_basebackup-tar' : 'pg_dump-custom',
    requestId: id, createdAt, finishedAt: createdAt, agent: { id: 'a', version: '0' }, source,
    pipeline: { compression: 'none', encryption: null }, data: { key: `artifacts/pg/main/${id}/data-aaaaaa.bin`, storedBytes: 1, rawBytes: 1, sha256: 'a'.repeat(64) }, verify: true,
  };
}

async function setup() {
  const store = new ArtifactStore(createMemoryBackend());
  const base1 = manifest('20260101T000000Z-0000000001', 'base', '2026-01-01T00:00:00Z', facts('2026-01-01T00:01:00Z', '0/3000100') as unknown as Record<string, unknown>);
  const base2 = manifest('20260102T000000Z-0000000002', 'base', '2026-01-02T00:00:00Z', facts('2026-01-02T00:01:00Z', '0/9000100') as unknown as Record<string, unknown>);
  const base3 = manifest('20260103T000000Z-0000000003', 'base', '2026-01-03T00:00:00Z', facts('2026-01-03T00:01:00Z', '0/F000100') as unknown as Record<string, unknown>);
  const logical = manifest('20260104T000000Z-0000000004', 'logical', '2026-01-04T00:00:00Z', {});
  for (const m of [base1, base2, base3, logical]) await store.commit(m);
  return { store, base1, base2, base3, logical };
}

const at = (time: string) => recoveryTargetOf({ time });
const record = (m: Manifest, status: 'passed' | 'failed') => ({ artifactId: m.id, status, verifiedAt: '2026-02-01T00:00:00Z', durationMs: 1, checks: [] });

describe('choosing the base backup', () => {
  it('time: the newest that ended before it; LSN: the newest whose stop LSN is at or before it; latest and restore points: the newest', async () => {
    const { store, base1, base2, base3 } = await setup();
    expect((await chooseBaseBackup(store, 'main', at('2026-01-02T12:00:00Z'), undefined)).manifest.id).toBe(base2.id);
    expect((await chooseBaseBackup(store, 'main', at('2026-01-02T00:01:00Z'), undefined)).manifest.id).toBe(base1.id);
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ lsn: '0/9000100' }), undefined)).manifest.id).toBe(base2.id);
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), undefined)).manifest.id).toBe(base3.id);
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ restorePoint: 'p' }), undefined)).manifest.id).toBe(base3.id);
    expect((await chooseBaseBackup(store, 'main', { type: 'immediate' }, undefined)).facts.stopLsn).toBe('0/F000100');
  });

  it('skips backups that failed verification; a passed one only breaks a tie', async () => {
    const { store, base2, base3 } = await setup();
    await store.writeVerification(base3, record(base3, 'failed'));
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), undefined)).manifest.id).toBe(base2.id);
    const twin = manifest('20260102T000001Z-0000000005', 'base', '2026-01-02T00:00:01Z', facts('2026-01-02T00:01:00Z', '0/9000100') as unknown as Record<string, unknown>);
    await store.commit(twin);
    await store.writeVerification(base2, record(base2, 'passed'));
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), undefined)).manifest.id).toBe(base2.id);
  });

  it('a target before every base backup is RECOVERY_TARGET_UNREACHABLE naming the oldest point; no base backup at all is ARTIFACT_NOT_FOUND', async () => {
    const { store, base1 } = await setup();
    const early = await chooseBaseBackup(store, 'main', at('2025-12-31T00:00:00Z'), undefined).catch((e: unknown) => e);
    expect(early).toMatchObject({ code: 'RECOVERY_TARGET_UNREACHABLE', message: expect.stringContaining(`the oldest point that can be restored is 2026-01-01T00:01:00Z (LSN 0/3000100, base backup ${base1.id})`) });
    const empty = new ArtifactStore(createMemoryBackend());
    await expect(chooseBaseBackup(empty, 'main', recoveryTargetOf({ latest: true }), undefined)).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
  });

  it('an explicit artifact must be a base backup that ends before the target', async () => {
    const { store, base1, base3, logical } = await setup();
    await store.writeVerification(base1, record(base1, 'failed'));
    expect((await chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), base1.id)).manifest.id).toBe(base1.id);
    await expect(chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), logical.id)).rejects.toMatchObject({ code: 'COMMAND_INVALID' });
    await expect(chooseBaseBackup(store, 'main', at('2026-01-02T00:00:00Z'), base3.id)).rejects.toMatchObject({ code: 'RECOVERY_TARGET_UNREACHABLE' });
    await expect(chooseBaseBackup(store, 'main', recoveryTargetOf({ latest: true }), 'nope')).rejects.toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
  });

  it('a logical restore never picks a base backup', async () => {
    const { store, logical } = await setup();
    expect((await pickArtifact(store, 'main', undefined)).id).toBe(logical.id);
  });
});

describe('times without an offset', () => {
  it('are UTC, whatever the agent’s time zone', () => {
    expect(recoveryTargetOf({ time: '2026-11-22 10:15' })).toEqual({ type: 'time', time: '2026-11-22T10:15:00.000000Z', inclusive: true });
  });
});

describe('a time target a fraction of a millisecond after a backup', () => {
  it('is reached from it: microseconds are compared, not cut to milliseconds', () => {
    const facts = { stoppedAt: '2026-11-22T10:15:00.000400Z' } as PgBaseSourceFacts;
    expect(reaches(facts, recoveryTargetOf({ time: '2026-11-22 10:15:00.0005+00' }))).toBe(true);
    expect(reaches(facts, recoveryTargetOf({ time: '2026-11-22 10:15:00.0003+00' }))).toBe(false);
  });
});
