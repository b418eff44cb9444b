// Hostile trees: whatever a forged or broken snapshot holds, nothing is written outside the target.
// Each case restores into work/target beside work/sentinel (a directory with a file a hostile entry
// aims at) and then checks that the sentinel is byte-for-byte as before, that work/ holds nothing
// new, that the absolute path a tree names does not exist, and that the refusal says why.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { RestoreRefusedError, restoreToDirectory } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { MTIME_NS, TreeBuilder } from './tree-fixture.js';

let work: string;
let sentinel: string;
let absoluteVictim: string;
let repository: MemoryChunkRepository;

beforeEach(async () => {
  work = await makeTempDir('tidemark-hostile');
  sentinel = join(work, 'sentinel');
  await mkdir(sentinel);
  await writeFile(join(sentinel, 'secret'), 'untouched');
  absoluteVictim = join(work, `absolute-${randomBytes(4).toString('hex')}`);
  repository = new MemoryChunkRepository();
});
afterEach(async () => {
  await removeTempDir(work);
});

/** Every name and content under a directory, with mode and mtime: a change anywhere shows. */
async function fingerprint(directory: string): Promise<string[]> {
  const names = (await readdir(directory, { recursive: true })).sort();
  return Promise.all(
    names.map(async (name) => {
      const stats = await lstat(join(directory, name), { bigint: true });
      const content = stats.isFile() ? await readFile(join(directory, name), 'utf8') : '';
      return `${name} ${stats.mode.toString(8)} ${stats.mtimeNs} ${stats.nlink} ${content}`;
    }),
  );
}

type Case = readonly [name: string, build: (tree: TreeBuilder) => TreeBuilder, refused: readonly { path: string; reason: RegExp }[]];

const file = (path: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, chunks: [], ...extra });

const cases: readonly Case[] = [
  ['a ../ path', (t) => t.raw(file('../sentinel/secret')).raw(file('../escaped')), [{ path: '../sentinel/secret', reason: /'\.\.' segment/ }, { path: '../escaped', reason: /'\.\.' segment/ }]],
  ['.. inside a path', (t) => t.dir('d').raw(file('d/../../escaped')), [{ path: 'd/../../escaped', reason: /'\.\.' segment/ }]],
  ['an absolute path', (t) => t.raw(file(absoluteVictim)), [{ path: '<absolute>', reason: /absolute path/ }]],
  ['empty, . and // paths', (t) => t.raw(file('')).raw(file('.')).raw(file('x//y')), [{ path: '', reason: /empty path/ }, { path: '.', reason: /'\.' segment/ }, { path: 'x//y', reason: /empty path segment/ }]],
  ['a NUL byte', (t) => t.raw(file('a\0/../../escaped')), [{ path: 'a\0/../../escaped', reason: /NUL/ }]],
  ['a file below a symlink to outside', (t) => t.symlink('a', '../sentinel').file('a/new', 'planted').file('a/secret', 'overwritten'), [{ path: 'a/new', reason: /ancestor is a symlink/ }, { path: 'a/secret', reason: /ancestor is a symlink/ }]],
  ['a symlink, then a dir of the same name, then a file in it', (t) => t.symlink('a', '../sentinel').dir('a').file('a/new', 'planted'), [{ path: 'a', reason: /duplicate path/ }, { path: 'a/new', reason: /ancestor is a symlink/ }]],
  ['a dir and a file in it, then a symlink of the same name', (t) => t.dir('a').file('a/new', 'inside').symlink('a', '../sentinel'), [{ path: 'a', reason: /out of walk order/ }]],
  ['a symlink, then a hard link through it', (t) => t.file('0', 'x').symlink('a', '../sentinel').hardlink('a/h', '0'), [{ path: 'a/h', reason: /ancestor is a symlink/ }]],
  ['a hard link to a file through a symlink', (t) => t.symlink('a', '../sentinel').raw({ path: 'h', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, linkTo: 'a/secret' }), [{ path: 'h', reason: /hard link target was not restored as a file/ }]],
  ['a hard link whose target escapes', (t) => t.raw({ path: 'h', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, linkTo: '../sentinel/secret' }), [{ path: 'h', reason: /hard link target: '\.\.' segment/ }]],
  ['a hard link to an absolute path', (t) => t.raw({ path: 'h', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, linkTo: join(sentinel, 'secret') }), [{ path: 'h', reason: /hard link target: absolute path/ }]],
  ['a hard link to a symlink', (t) => t.symlink('l', '../sentinel/secret').hardlink('m', 'l'), [{ path: 'm', reason: /not restored as a file/ }]],
  ['a hard link to a later path', (t) => t.raw({ path: 'h', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtimeNs: MTIME_NS, size: 0, linkTo: 'z' }).file('z', 'z'), [{ path: 'h', reason: /does not come before/ }]],
  ['duplicate paths', (t) => t.file('f', 'first').file('f', 'second'), [{ path: 'f', reason: /duplicate path/ }]],
  ['a file below a file', (t) => t.file('f', 'x').file('f/x', 'y'), [{ path: 'f/x', reason: /ancestor is a file/ }]],
  [
    'device-like types',
    (t) => t.raw(file('dev-char', { type: 'chardev' })).raw(file('dev-fifo', { type: 'fifo' })).raw(file('dev-sock', { type: 'socket' })),
    [{ path: 'dev-char', reason: /never restored/ }, { path: 'dev-fifo', reason: /never restored/ }, { path: 'dev-sock', reason: /never restored/ }],
  ],
  ['a symlink whose own path escapes', (t) => t.symlink('../escaped-link', '/etc/passwd'), [{ path: '../escaped-link', reason: /'\.\.' segment/ }]],
];

describe('restoreToDirectory with a hostile tree', () => {
  it.each(cases)('%s: refused, nothing written outside the target, the rest restored', async (_name, build, expected) => {
    const tree = build(new TreeBuilder(repository)).file('zz-benign', 'restored anyway');
    const before = await fingerprint(sentinel);
    const target = join(work, 'target');

    const failure = await restoreToDirectory({ tree: tree.tree('asGiven'), repository, intoDirectory: target }).then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(failure).toBeInstanceOf(RestoreRefusedError);
    const { code, summary, message } = failure as RestoreRefusedError;
    expect(code).toBe('RESTORE_PATH_REFUSED');
    expect(summary.refused).toHaveLength(expected.length);
    expected.forEach(({ path, reason }, index) => {
      const refused = summary.refused[index]!;
      if (path !== '<absolute>') expect(refused.path).toBe(path);
      expect(refused.reason).toMatch(reason);
    });
    expect(message).toContain(summary.refused[0]!.reason);
    expect(await fingerprint(sentinel)).toEqual(before);
    expect((await readdir(work)).sort()).toEqual(['sentinel', 'target']);
    await expect(lstat(absoluteVictim)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(target, 'zz-benign'), 'utf8')).toBe('restored anyway');
    expect((await readdir(target, { recursive: true })).filter((name) => name.includes('tidemark-tmp'))).toEqual([]);
  });

  it('a hostile overwrite puts the previous tree back', async () => {
    const target = join(work, 'target');
    await mkdir(target);
    await writeFile(join(target, 'previous'), 'previous');
    const tree = new TreeBuilder(repository).symlink('a', '../sentinel').file('a/secret', 'overwritten').file('b', 'b');
    await expect(restoreToDirectory({ tree: tree.tree('asGiven'), repository, intoDirectory: target, overwrite: true })).rejects.toMatchObject({
      code: 'RESTORE_PATH_REFUSED',
      message: expect.stringContaining('the previous tree is back in place') as string,
    });
    expect(await readdir(target)).toEqual(['previous']);
    expect((await readdir(work)).sort()).toEqual(['sentinel', 'target']);
    expect(await readFile(join(sentinel, 'secret'), 'utf8')).toBe('untouched');
  });

  it('a mode with file-type bits or a chunk list that does not add up is a malformed tree', async () => {
    const badMode = new TreeBuilder(repository).raw(file('dev', { mode: 0o20644 }));
    await expect(restoreToDirectory({ tree: badMode.tree('asGiven'), repository, intoDirectory: join(work, 't1') })).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    const badSize = new TreeBuilder(repository).raw(file('f', { size: 10 }));
    await expect(restoreToDirectory({ tree: badSize.tree('asGiven'), repository, intoDirectory: join(work, 't2') })).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    expect((await readdir(work)).sort()).toEqual(['sentinel']);
  });
});
