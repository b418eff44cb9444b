import { chmod, rm, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { compareDirectoryWithTree, restoreToDirectory } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { TreeBuilder } from './tree-fixture.js';

let work: string;
let repository: MemoryChunkRepository;
beforeEach(async () => {
  work = await makeTempDir('tidemark-compare');
  repository = new MemoryChunkRepository();
});
afterEach(async () => {
  await removeTempDir(work);
});

describe('compareDirectoryWithTree', () => {
  it('finds a flipped byte, a mode change, a missing file, an extra file, a changed link target and a broken hard link', async () => {
    const builder = new TreeBuilder(repository)
      .file('a', 'abcdef')
      .file('b', 'mode', { mode: 0o640 })
      .file('c', 'will go')
      .dir('d')
      .file('d/first', 'linked')
      .hardlink('d/second', 'd/first')
      .symlink('l', 'target');
    const into = join(work, 'restored');
    await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into });
    expect((await compareDirectoryWithTree(into, builder.tree()())).ok).toBe(true);

    const handle = await open(join(into, 'a'), 'r+');
    await handle.write(Buffer.from('X'), 0, 1, 2);
    await handle.close();
    await chmod(join(into, 'b'), 0o644);
    await rm(join(into, 'c'));
    await writeFile(join(into, 'extra'), 'not in the tree');
    await rm(join(into, 'l'));
    const { symlink } = await import('node:fs/promises');
    await symlink('elsewhere', join(into, 'l'));
    await rm(join(into, 'd/second'));
    await writeFile(join(into, 'd/second'), 'linked');

    const comparison = await compareDirectoryWithTree(into, builder.tree()());
    expect(comparison.ok).toBe(false);
    expect(comparison.differences.map(({ path, field }) => `${path} ${field}`).sort()).toEqual(['a sha256', 'b mode', 'c exists', 'd/second hardlink', 'extra exists', 'l linkTarget'].sort());
    expect(comparison.differenceCount).toBe(6);
    expect(comparison.differences.find(({ field }) => field === 'mode')).toMatchObject({ expected: '0o0640', actual: '0o0644' });
  });

  it('hashes many files at once yet reports exactly the flipped ones, in walk order', async () => {
    const builder = new TreeBuilder(repository);
    for (let index = 0; index < 3000; index++) {
      if (index % 500 === 0) builder.dir(`d${index / 500}`);
      // Mostly small, a few larger than one read buffer (256 KiB) and a few empty.
      const size = index % 1000 === 7 ? 300 * 1024 + index : index % 997 === 0 ? 0 : 50 + (index % 700);
      builder.file(`d${Math.floor(index / 500)}/f${String(index).padStart(4, '0')}`, Buffer.alloc(size, index % 251));
    }
    const into = join(work, 'restored');
    await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into });
    const clean = await compareDirectoryWithTree(into, builder.tree()());
    expect(clean).toMatchObject({ ok: true, filesCompared: 3000, differenceCount: 0 });

    for (const path of ['d0/f0003', 'd2/f1007', 'd5/f2999']) {
      const handle = await open(join(into, path), 'r+');
      await handle.write(Buffer.from('X'), 0, 1, 1);
      await handle.close();
    }
    await chmod(join(into, 'd2/f1007'), 0o600);
    const comparison = await compareDirectoryWithTree(into, builder.tree()());
    expect(comparison.ok).toBe(false);
    expect(comparison.differenceCount).toBe(4);
    expect(comparison.filesCompared).toBe(3000);
    expect(comparison.bytesCompared).toBe(clean.bytesCompared);
    // Walk order, and a file's mode before its content, as a one-at-a-time compare reports them.
    expect(comparison.differences.map(({ path, field }) => `${path} ${field}`)).toEqual(['d0/f0003 sha256', 'd2/f1007 mode', 'd2/f1007 sha256', 'd5/f2999 sha256']);
  });
});
