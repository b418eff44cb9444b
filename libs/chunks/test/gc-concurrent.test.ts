// A backup and a collection at the same time, on real files: whatever the interleaving, every
// committed snapshot's chunks stay readable, in particular those a running backup deduplicated
// against while they were being condemned.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectGarbage, openChunkRepository, type ChunkRepository, type RepositoryOptions } from '@tidemark/chunks';
import { createFsBackend } from '@tidemark/storage';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { KiB, encryptedKeys, manualClock, pseudoRandom } from './helpers.js';
import { Snapshots, startBackup, unreadableChunks } from './backups.js';

const HOUR = 60 * 60 * 1000;

let directory: string;
let options: RepositoryOptions;
beforeEach(async () => {
  directory = await makeTempDir('tidemark-chunks-gc');
  options = { backend: await createFsBackend({ root: directory }), keyRing: encryptedKeys(), compression: 'zstd', packBytes: 96 * KiB };
});
afterEach(async () => {
  await options.backend.close();
  await removeTempDir(directory);
});

describe('a backup and a collection running concurrently (fs backend)', () => {
  it('deterministic: a backup deduplicates, the collector condemns, the backup commits while the collector lists snapshots', async () => {
    const clock = manualClock();
    const withClock = { ...options, now: clock.now };
    const repository = await openChunkRepository(withClock);
    const snapshots = new Snapshots();
    const collect = (hook?: () => Promise<void>) =>
      collectGarbage(withClock, async () => {
        await hook?.();
        return snapshots.referenced();
      }, { now: clock.now, graceMs: HOUR });
    const data = pseudoRandom(700 * KiB, 5);

    const first = await startBackup(repository, snapshots, 'first');
    await first.add(data);
    await first.commit();
    snapshots.forget('first'); // retention removed it

    const second = await startBackup(repository, snapshots, 'second');
    await second.add(data);
    expect(second.deduplicated.length).toBe(second.ids.length);
    const condemnation = await collect();
    expect(condemnation.packsCondemned.length).toBeGreaterThan(0);

    clock.advance(2 * HOUR);
    await second.add(Buffer.from('a little more'));
    // The session was listed live (step 2); it commits and closes before the snapshots are listed (step 3).
    const during = await collect(() => second.commit());
    expect(during.packsDeleted).toEqual([]);
    expect([...during.packsRescued].sort()).toEqual([...condemnation.packsCondemned].sort());
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);

    // A third backup, started after a new condemnation, stores again what it would have deduplicated.
    snapshots.forget('second');
    const recondemned = await collect();
    clock.advance(10 * 60 * 1000);
    const third = await startBackup(repository, snapshots, 'third');
    await third.add(data);
    expect(third.deduplicated).toEqual([]);
    clock.advance(2 * HOUR);
    await third.add(Buffer.from('progress'));
    const deletion = await collect();
    expect(deletion.packsDeleted.filter((id) => recondemned.packsCondemned.includes(id)).sort()).toEqual([...recondemned.packsCondemned].sort());
    await third.commit();
    expect(await unreadableChunks(repository, snapshots)).toEqual([]);
  });

  it('randomized: 30 rounds of two backups and a collection loop interleaved on real I/O', async () => {
    const seed = Number(process.env.TIDEMARK_GC_SEED ?? Date.now() % 100_000);
    let state = seed || 1;
    const random = (): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) / 2 ** 32;
    };
    // Every call moves the clock a minute: grace 0 lets a condemned pack go on the very next run,
    // so only the session rules stand between a running backup and the loss of its chunks.
    let time = Date.parse('2030-01-01T00:00:00Z');
    const now = (): Date => new Date((time += 60_000));
    const withClock = { ...options, now, sessionStaleMs: 1000 * 24 * HOUR };
    const repository: ChunkRepository = await openChunkRepository(withClock);
    const snapshots = new Snapshots();
    const files = Array.from({ length: 8 }, (_, i) => pseudoRandom((150 + 40 * i) * KiB, 1000 + i));
    let deleted = 0;
    let rescued = 0;
    let deduplicated = 0;

    const backup = async (name: string): Promise<void> => {
      const running = await startBackup(repository, snapshots, name);
      try {
        for (let i = 0; i < 1 + Math.floor(random() * 3); i++) {
          await running.add(random() < 0.2 ? pseudoRandom(120 * KiB, Math.floor(random() * 1e9)) : files[Math.floor(random() * files.length)]!);
        }
        deduplicated += running.deduplicated.length;
        if (random() < 0.15) throw new Error('abandoned'); // a failed backup: closes without committing
        await running.commit();
      } catch (error) {
        if (!(error instanceof Error && error.message === 'abandoned')) throw error;
        await running.commit().catch(() => undefined);
        snapshots.forget(name);
      }
    };

    for (let round = 0; round < 30; round++) {
      // Retention: keep a few of the newest snapshots, at random.
      for (const name of [...snapshots.committed.keys()]) if (random() < 0.5) snapshots.forget(name);
      let running = 2;
      const done = (): void => void running--;
      const backups = [backup(`r${round}-a`).finally(done), backup(`r${round}-b`).finally(done)];
      const collector = (async () => {
        for (let runs = 0; runs < 2 || (running > 0 && runs < 30); runs++) {
          const report = await collectGarbage(withClock, snapshots.referenced, { now, graceMs: 0, sessionStaleMs: withClock.sessionStaleMs });
          deleted += report.packsDeleted.length;
          rescued += report.packsRescued.length;
        }
      })();
      await Promise.all([...backups, collector]);
      expect(await unreadableChunks(repository, snapshots), `seed ${seed}, round ${round}`).toEqual([]);
    }
    // The loop must have exercised what it claims to.
    expect(deleted, `seed ${seed}`).toBeGreaterThan(0);
    expect(deduplicated, `seed ${seed}`).toBeGreaterThan(0);
    expect(rescued + deleted, `seed ${seed}`).toBeGreaterThan(0);
  });
});
