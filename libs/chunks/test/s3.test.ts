// The repository on a real S3 endpoint (s3rver): ranged reads, listings and removals as S3 does them.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { collectGarbage, openChunkRepository, rebuildIndex, type RepositoryOptions } from '@tidemark/chunks';
import { createS3Backend } from '@tidemark/storage';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { KiB, encryptedKeys, keysUnder, manualClock, pseudoRandom } from './helpers.js';
import { Snapshots, startBackup, unreadableChunks } from './backups.js';

let s3: S3Endpoint;
let options: RepositoryOptions;
beforeAll(async () => {
  s3 = await startS3();
  const backend = await createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: 'chunks', prefix: 'tidemark' });
  options = { backend, keyRing: encryptedKeys(), compression: 'zstd', packBytes: 128 * KiB };
});
afterAll(async () => {
  await options?.backend.close();
  await s3?.stop();
});

it('puts, reads (whole packs and single chunks), rebuilds the index and collects on s3rver', async () => {
  const clock = manualClock();
  const withClock = { ...options, now: clock.now };
  const repository = await openChunkRepository(withClock);
  const snapshots = new Snapshots();
  const kept = await startBackup(repository, snapshots, 'kept');
  await kept.add(pseudoRandom(500 * KiB, 21));
  await kept.commit();
  const dropped = await startBackup(repository, snapshots, 'dropped');
  await dropped.add(pseudoRandom(500 * KiB, 22));
  await dropped.commit();
  snapshots.forget('dropped');

  const locations = [...new Set(kept.ids)].map((id) => repository.locate(id)!);
  const packId = locations[0]!.packId;
  const inPack = locations.filter((location) => location.packId === packId);
  let read = 0;
  for await (const { location, plain } of repository.readPackChunks(packId, inPack)) {
    expect(repository.chunkId(plain!)).toBe(location.id);
    read++;
  }
  expect(read).toBe(inPack.length);

  for (const key of await keysUnder(options.backend, 'chunks/index/')) await options.backend.remove(key);
  expect((await rebuildIndex(options.backend, options)).chunks).toBe(new Set([...kept.ids, ...dropped.ids]).size);

  const collect = () => collectGarbage(withClock, snapshots.referenced, { now: clock.now, graceMs: 60_000 });
  const condemned = (await collect()).packsCondemned;
  expect(condemned.length).toBeGreaterThan(0);
  clock.advance(120_000);
  expect([...(await collect()).packsDeleted].sort()).toEqual([...condemned].sort());
  expect(await unreadableChunks(repository, snapshots)).toEqual([]);
});
