// Many small files: the restore's own cost per file (the in-memory repository takes the chunk
// reads out of the figure). TIDEMARK_RESTORE_BENCH_FILES scales it up.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { compareDirectoryWithTree, restoreToDirectory } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { TreeBuilder } from './tree-fixture.js';

const FILES = Number(process.env['TIDEMARK_RESTORE_BENCH_FILES'] ?? 5_000);
let work: string;
beforeEach(async () => {
  work = await makeTempDir('tidemark-many');
});
afterEach(async () => {
  await removeTempDir(work);
});

it(`restores ${FILES} small files in batches, grouped by pack`, async () => {
  const repository = new MemoryChunkRepository(16 * 1024 * 1024);
  const builder = new TreeBuilder(repository);
  for (let index = 0; index < FILES; index++) {
    if (index % 1000 === 0) builder.dir(`d${index / 1000}`);
    builder.file(`d${Math.floor(index / 1000)}/f${index}`, randomBytes(100 + (index % 4000)));
  }
  const tree = builder.tree();
  const started = performance.now();
  const summary = await restoreToDirectory({ tree, repository, intoDirectory: join(work, 'restored') });
  const seconds = (performance.now() - started) / 1000;
  console.log(`restore (memory repository): ${summary.files} files in ${seconds.toFixed(2)} s = ${Math.round(summary.files / seconds)} files/s, ${repository.packReads} pack reads`);
  expect(summary.files).toBe(FILES);
  // One ranged read per pack and batch, not one per file.
  expect(repository.packReads).toBeLessThanOrEqual(repository.packs.size + Math.ceil(FILES / 5000) * 2);
  const compareStarted = performance.now();
  const comparison = await compareDirectoryWithTree(join(work, 'restored'), tree());
  const compareSeconds = (performance.now() - compareStarted) / 1000;
  console.log(`compare: ${comparison.filesCompared} files in ${compareSeconds.toFixed(2)} s = ${Math.round(comparison.filesCompared / compareSeconds)} files/s`);
  expect(comparison.ok).toBe(true);
  expect(comparison.filesCompared).toBe(FILES);
});
