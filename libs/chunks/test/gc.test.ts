import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { collectGarbage, openChunkRepository, type RepositoryOptions } from '@tidemark/chunks';
import { KiB, keysUnder, manualClock, pseudoRandom, repositoryOptions } from './helpers.js';
import { Snapshots, startBackup, unreadableChunks } from './backups.js';

const HOUR = 60 * 60 * 1000;
const MINUTE = 60 * 1000;

async function setUp(overrides: Partial<RepositoryOptions> = {}) {
  const clock = manualClock();
  const options = repositoryOptions({ packBytes: 128 * KiB, now: clock.now, ...overrides });
  const repository = await openChunkRepository(options);
  const snapshots = new Snapshots();
  const collect = () => collectGarbage(options, snapshots.referenced, { now: clock.now, graceMs: HOUR, sessionStaleMs: 6 * HOUR });
  const backUp = async (name: string, data: Buffer) => {
    const backup = await startBackup(repository, snapshots, name);
    await backup.add(data);
    await backup.commit();
    return backup;
  };
  return { clock, options, repository, snapshots, collect, backUp };
}

const packsOf = async (options: RepositoryOptions) => (await keysUnder(options.backend, 'chunks/packs/')).map((key) => key.slice(-69, -5));

describe('collectGarbage', () => {
  const kept = pseudoRandom(600 * KiB, 1);
  const dropped = pseudoRandom(600 * KiB, 2);

  it('condemns an unreferenced pack, then deletes it once the grace period has passed', async () => {
    const { clock, options, repository, snapshots, collect, backUp } = await setUp();
    await backUp('keep', kept);
    const packsOfKept = await packsOf(options);
    const gone = await backUp('drop', dropped);
    snapshots.forget('drop');

    const first = await collect();
    expect(first.packsCondemned.length).toBeGreaterThan(0);
    expect(first.packsCondemned.filter((id) => packsOfKept.includes(id))).toEqual([]);
    expect(first.packsDeleted).toEqual([]);
    await repository.refresh();
    expect(gone.ids.some((id) => repository.has(id))).toBe(false); // condemned: no dedup against it

    clock.advance(HOUR / 2);
    expect((await collect()).packsDeleted).toEqual([]);
    clock.advance(HOUR);
    const third = await collect();
    expect([...third.packsDeleted].sort()).toEqual([...first.packsCondemned].sort());
    expect(third.bytesDeleted).toBeGreaterThan(dropped.length / 2);
    expect((await packsOf(options)).sort()).toEqual([...packsOfKept].sort());
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);
    expect(third.indexFilesAfter).toBe(1);
    expect(await keysUnder(options.backend, 'chunks/index/')).toHaveLength(1);
  });

  it('rescues a condemned pack that a snapshot references again', async () => {
    const { clock, repository, snapshots, collect, backUp } = await setUp();
    const old = await backUp('old', dropped);
    snapshots.forget('old');
    // Started before the condemnation: it deduplicates against the chunks about to be condemned.
    const running = await startBackup(repository, snapshots, 'again');
    await running.add(dropped);
    expect(running.deduplicated.length).toBe(running.ids.length);
    const first = await collect();
    expect(first.packsCondemned.length).toBeGreaterThan(0);
    await running.commit();
    clock.advance(2 * HOUR);
    const second = await collect();
    expect([...second.packsRescued].sort()).toEqual([...first.packsCondemned].sort());
    expect(second.packsDeleted).toEqual([]);
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);
    expect(old.ids.every((id) => repository.has(id))).toBe(true);
  });

  it('a live session started before the condemnation holds the deletion back until it closes', async () => {
    const { clock, repository, snapshots, collect, backUp } = await setUp();
    await backUp('old', dropped);
    snapshots.forget('old');
    const running = await startBackup(repository, snapshots, 'running');
    const first = await collect();
    clock.advance(2 * HOUR);
    await running.add(pseudoRandom(50 * KiB, 9)); // progress refreshes its marker
    const held = await collect();
    expect(held.packsDeleted).toEqual([]);
    expect(held.liveSessions).toEqual(['running']);
    await running.commit();
    const after = await collect();
    expect([...after.packsDeleted].sort()).toEqual([...first.packsCondemned].sort());
  });

  it('a session started after the condemnation does not hold it back: it stores the chunks again', async () => {
    const { clock, repository, snapshots, collect, backUp } = await setUp();
    await backUp('old', dropped);
    snapshots.forget('old');
    const first = await collect();
    clock.advance(10 * MINUTE);
    const late = await startBackup(repository, snapshots, 'late');
    await late.add(dropped);
    expect(late.deduplicated).toEqual([]);
    clock.advance(2 * HOUR);
    await late.add(Buffer.from('progress'));
    const second = await collect();
    expect(second.packsDeleted.filter((id) => first.packsCondemned.includes(id)).sort()).toEqual([...first.packsCondemned].sort());
    await late.commit();
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);
  });

  it('a stale session does not hold deletions back, and fails its flush with CHUNK_SESSION_EXPIRED', async () => {
    const { clock, options, repository, snapshots, collect, backUp } = await setUp();
    await backUp('old', dropped);
    snapshots.forget('old');
    const stale = await startBackup(repository, snapshots, 'stale');
    await stale.add(dropped);
    const first = await collect();
    clock.advance(7 * HOUR);
    const second = await collect();
    expect([...second.packsDeleted].sort()).toEqual([...first.packsCondemned].sort());
    expect(second.liveSessions).toEqual([]);
    const error = await stale.commit().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidemarkError);
    expect((error as TidemarkError).code).toBe('CHUNK_SESSION_EXPIRED');
    expect((error as TidemarkError).retryable).toBe(true);
    expect(snapshots.committed.has('stale')).toBe(false);
    expect(await keysUnder(options.backend, 'chunks/sessions/')).toEqual([]);
  });

  it('a session silent for more than half the stale time fails even before any collector saw it', async () => {
    const { clock, repository, snapshots } = await setUp({ sessionStaleMs: 6 * HOUR });
    const quiet = await startBackup(repository, snapshots, 'quiet');
    await quiet.add(kept);
    clock.advance(3 * HOUR + MINUTE);
    const error = await quiet.commit().catch((e: unknown) => e);
    expect((error as TidemarkError).code).toBe('CHUNK_SESSION_EXPIRED');
  });

  it('deletes a crashed backup\'s unindexed packs after the grace period, and keeps a running backup\'s', async () => {
    const { clock, options, repository, snapshots, collect } = await setUp();
    const crashed = await startBackup(repository, snapshots, 'crashed');
    await crashed.add(dropped); // packs uploaded, never flushed, marker left behind
    const crashedPacks = await packsOf(options);
    expect(crashedPacks.length).toBeGreaterThan(0);
    const first = await collect();
    expect([...first.packsCondemned].sort()).toEqual([...crashedPacks].sort());
    clock.advance(2 * HOUR);
    expect((await collect()).packsDeleted).toEqual([]); // its marker is still fresh enough
    clock.advance(6 * HOUR);
    expect([...(await collect()).packsDeleted].sort()).toEqual([...crashedPacks].sort());
  });

  it('indexes again an unindexed pack that a committed snapshot references', async () => {
    const { clock, options, repository, snapshots, collect, backUp } = await setUp();
    const backup = await backUp('kept', kept);
    for (const key of await keysUnder(options.backend, 'chunks/index/')) await options.backend.remove(key);
    await collect();
    clock.advance(2 * HOUR);
    const second = await collect();
    expect(second.packsDeleted).toEqual([]);
    expect(second.packsRescued.length).toBeGreaterThan(0);
    await repository.refresh();
    expect(backup.ids.every((id) => repository.has(id))).toBe(true);
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);
  });

  it('dry run reports and changes nothing', async () => {
    const { options, snapshots, backUp } = await setUp();
    await backUp('old', dropped);
    snapshots.forget('old');
    const before = await keysUnder(options.backend, 'chunks/');
    const report = await collectGarbage(options, snapshots.referenced, { dryRun: true });
    expect(report.packsCondemned.length).toBeGreaterThan(0);
    expect(await keysUnder(options.backend, 'chunks/')).toEqual(before);
  });
});
