import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { compareDirectoryWithTree, restoreToDirectory } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { TreeBuilder } from './tree-fixture.js';

const GiB = 1024 * 1024 * 1024;
let work: string;
beforeEach(async () => {
  work = await makeTempDir('tidemark-sparse');
});
afterEach(async () => {
  await removeTempDir(work);
});

it('a 1 GiB file of zeros restores sparse and fast', async () => {
  const repository = new MemoryChunkRepository();
  const builder = new TreeBuilder(repository).zeros('disk.img', GiB + 12_345).file('after', 'x');
  const into = join(work, 'restored');
  const started = performance.now();
  const summary = await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into });
  const seconds = (performance.now() - started) / 1000;
  expect(summary).toMatchObject({ files: 2, bytes: GiB + 12_346 });
  const stats = await stat(join(into, 'disk.img'));
  expect(stats.size).toBe(GiB + 12_345);
  // Only the short last chunk (zeros read and left as a hole too) may take blocks.
  expect(stats.blocks * 512).toBeLessThan(1024 * 1024);
  console.log(`sparse 1 GiB restore: ${seconds.toFixed(3)} s`);
  expect(seconds).toBeLessThan(5);
  expect(repository.packReads).toBeLessThanOrEqual(2);
  expect((await compareDirectoryWithTree(into, builder.tree()())).ok).toBe(true);
});
