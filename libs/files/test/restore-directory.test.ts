import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, stat, writeFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { compareDirectoryWithTree, restoreToDirectory, type RestoreSummary, type TreeEntry } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { MTIME_NS, TreeBuilder } from './tree-fixture.js';

const asRoot = process.getuid?.() === 0;
const INVALID_UTF8_NAME = Buffer.concat([Buffer.from('names/bad-'), Buffer.of(0xff, 0xfe), Buffer.from('.txt')]);

let work: string;
let repository: MemoryChunkRepository;
beforeEach(async () => {
  work = await makeTempDir('tidemark-restore');
  repository = new MemoryChunkRepository(256 * 1024);
});
afterEach(async () => {
  await removeTempDir(work);
});

/** What real trees hold: every kind of entry, odd names and modes, several packs. */
function realisticTree(): TreeBuilder {
  return new TreeBuilder(repository)
    .dir('docs', { uid: 1234, gid: 5678 })
    .file('docs/a.txt', 'alpha\n', { uid: 1234, gid: 5678 })
    .file('docs/multi.bin', randomBytes(1024 * 1024 + 123))
    .file('docs/same-content.bin', Buffer.alloc(70_000, 7))
    .file('docs/same-content-again.bin', Buffer.alloc(70_000, 7))
    .file('docs/empty', '')
    .file('docs/locked', 'nobody may read me', { mode: 0o000 })
    .file('docs/setuid-tool', '#!/bin/sh\n', { mode: 0o4755 })
    .dir('empty-dir', { mode: 0o700, mtimeNs: '1600000000000000001' })
    .dir('shared', { mode: 0o2775, gid: 4321 })
    .file('shared/x', 'x')
    .dir('read-only', { mode: 0o555 })
    .file('read-only/inside', 'still written')
    .dir('links')
    .symlink('links/dangling', 'nowhere/at/all')
    .symlink('links/loop-a', 'loop-b')
    .symlink('links/loop-b', 'loop-a')
    .symlink('links/outside', '/etc/passwd')
    .symlink('links/to-docs', '../docs', { uid: 1234, gid: 5678 })
    .dir('hard')
    .file('hard/first', 'one inode, two names', { mode: 0o640 })
    .hardlink('hard/second', 'hard/first')
    .dir('names')
    .file('names/with\nnewline', 'n')
    .file('names/with space', 's')
    .file(INVALID_UTF8_NAME, 'b')
    .symlink('names/link-to-bad', Buffer.concat([Buffer.from('bad-'), Buffer.of(0xff, 0xfe), Buffer.from('.txt')]))
    .zeros('sparse-ish', 9 * 1024 * 1024 + 5);
}

describe('restoreToDirectory', () => {
  it('restores files, directories, symlinks, hard links, odd names, modes, owners and mtimes, identical by an independent walk', async () => {
    const builder = realisticTree();
    const into = join(work, 'restored');
    const progress: number[] = [];
    const summary = await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into, onProgress: (p) => progress.push(p.filesDone) });

    expect(summary).toMatchObject({ files: 14, directories: 7, symlinks: 6, hardlinks: 1, refused: [] });
    expect(progress.at(-1)).toBe(14);
    const comparison = await compareDirectoryWithTree(into, builder.tree()(), { owners: asRoot, mtimes: true });
    expect(comparison.differences).toEqual([]);
    expect(comparison).toMatchObject({ ok: true, filesCompared: 15 });

    expect(await readlink(join(into, 'links/dangling'))).toBe('nowhere/at/all');
    expect((await stat(join(into, 'hard/first'))).ino).toBe((await stat(join(into, 'hard/second'))).ino);
    expect(await readFile(Buffer.from(`${into}/${INVALID_UTF8_NAME.toString('latin1')}`, 'latin1'), 'utf8')).toBe('b');
    expect(((await stat(join(into, 'shared'))).mode & 0o7777).toString(8)).toBe('2775');
    const mtime = (await lstat(join(into, 'docs/a.txt'), { bigint: true })).mtimeNs;
    expect(Number(mtime - BigInt(MTIME_NS))).toBeLessThanOrEqual(1000);
    // No temp names are left behind.
    expect((await readdir(into, { recursive: true })).filter((name) => name.includes('tidemark-tmp'))).toEqual([]);
  });

  it('restores only the chosen paths: a directory selects its subtree, its parents are created, a hard link whose first path is not chosen gets the content', async () => {
    const builder = new TreeBuilder(repository)
      .dir('cases', { mode: 0o750 })
      .dir('cases/2023')
      .file('cases/2023/old.pdf', 'old')
      .dir('cases/2024')
      .file('cases/2024/a.pdf', 'a')
      .dir('cases/2024/sub')
      .file('cases/2024/sub/b.pdf', 'b')
      .file('cases/2024b.pdf', 'not under cases/2024')
      .file('other/first', 'linked content')
      .hardlink('other/second', 'other/first')
      .hardlink('picked/link', 'other/first')
      .hardlink('picked/link2', 'other/first');
    const into = join(work, 'subset');
    const summary = await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into, paths: ['cases/2024', '/picked/'] });
    expect(summary).toMatchObject({ files: 3, hardlinks: 1, refused: [] });
    expect((await readdir(into, { recursive: true })).sort()).toEqual(['cases', 'cases/2024', 'cases/2024/a.pdf', 'cases/2024/sub', 'cases/2024/sub/b.pdf', 'picked', 'picked/link', 'picked/link2']);
    expect((await stat(join(into, 'cases'))).mode & 0o7777).toBe(0o750);
    expect(await readFile(join(into, 'picked/link2'), 'utf8')).toBe('linked content');
    expect((await stat(join(into, 'picked/link'))).ino).toBe((await stat(join(into, 'picked/link2'))).ino);
    const comparison = await compareDirectoryWithTree(into, builder.tree()(), { paths: ['cases/2024', 'picked'] });
    expect(comparison.differences).toEqual([]);

    await expect(restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: join(work, 'none'), paths: ['cases/2025'] })).rejects.toMatchObject({ code: 'COMMAND_INVALID' });
    await expect(stat(join(work, 'none'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a non-empty target without overwrite, and restores into an existing empty one', async () => {
    const builder = new TreeBuilder(repository).file('f', 'new');
    const into = join(work, 'existing');
    await mkdir(into);
    await writeFile(join(into, 'keep'), 'old');
    await expect(restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into })).rejects.toMatchObject({ code: 'RESTORE_TARGET_EXISTS' });
    expect(await readdir(into)).toEqual(['keep']);

    const empty = join(work, 'empty');
    await mkdir(empty, { mode: 0o750 });
    await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: empty });
    expect(await readFile(join(empty, 'f'), 'utf8')).toBe('new');
    expect((await stat(empty)).mode & 0o777).toBe(0o750);
  });

  it('overwrites by moving the old tree aside, and removes it once the restore succeeded', async () => {
    const builder = new TreeBuilder(repository).dir('d').file('d/f', 'new');
    const into = join(work, 'target');
    await mkdir(join(into, 'old-dir'), { recursive: true });
    await writeFile(join(into, 'old-dir/old'), 'old');
    await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into, overwrite: true });
    expect((await readdir(into, { recursive: true })).sort()).toEqual(['d', 'd/f']);
    expect((await readdir(work)).sort()).toEqual(['target']);
  });

  it('puts the old tree back when an overwrite fails midway (a chunk cannot be read)', async () => {
    const builder = new TreeBuilder(repository, 16 * 1024);
    for (let index = 0; index < 40; index++) builder.file(`many/f${String(index).padStart(2, '0')}`, randomBytes(40_000));
    const into = join(work, 'target');
    await mkdir(join(into, 'old'), { recursive: true });
    await writeFile(join(into, 'old/precious'), 'precious');
    await symlink('old/precious', join(into, 'old-link'));
    let chunksRead = 0;
    repository.beforeChunk = () => {
      if (++chunksRead === 30) throw new Error('pack read failed: connection reset');
    };
    const restored: number[] = [];
    await expect(restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into, overwrite: true, onProgress: (p) => restored.push(p.filesDone) })).rejects.toMatchObject({
      code: 'RESTORE_FAILED',
      message: expect.stringContaining('connection reset') as string,
    });
    expect(chunksRead).toBeGreaterThanOrEqual(30);
    expect((await readdir(into, { recursive: true })).sort()).toEqual(['old', 'old-link', 'old/precious']);
    expect(await readFile(join(into, 'old-link'), 'utf8')).toBe('precious');
    expect((await readdir(work)).sort()).toEqual(['target']);
  });

  it('removes what it wrote when a restore into a new directory fails, so that a retry can start again', async () => {
    const builder = new TreeBuilder(repository, 16 * 1024).file('a', randomBytes(100_000)).file('b', randomBytes(100_000));
    repository.beforeChunk = (location) => {
      if (location.offset > 0) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    };
    const into = join(work, 'fresh');
    await expect(restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: into })).rejects.toMatchObject({ code: 'RESTORE_FAILED' });
    await expect(stat(into)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('stops on abort with SHUTTING_DOWN', async () => {
    const builder = new TreeBuilder(repository).file('a', 'a').file('b', 'b');
    const controller = new AbortController();
    controller.abort();
    await expect(restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: join(work, 'x'), signal: controller.signal })).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
  });

  it('skips files the backup could not store as good and says so', async () => {
    const builder = new TreeBuilder(repository).file('good', 'g').raw({ path: 'unreadable', type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, problem: 'unreadable' } satisfies TreeEntry);
    const summary: RestoreSummary = await restoreToDirectory({ tree: builder.tree(), repository, intoDirectory: join(work, 'x') });
    expect(summary.skipped).toEqual([{ path: 'unreadable', reason: 'not stored as good: unreadable' }]);
    expect(await readdir(join(work, 'x'))).toEqual(['good']);
  });
});
