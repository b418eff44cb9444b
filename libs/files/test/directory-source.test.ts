import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { bytesOf, compareTreePaths, openSource, type SourceEntry } from '../src/index.js';

/** Walk order computed another way: paths as arrays of name bytes, compared name by name. */
function walkOrder(paths: Buffer[]): Buffer[] {
  const segments = (path: Buffer): Buffer[] => {
    const out: Buffer[] = [];
    let start = 0;
    for (let i = 0; i <= path.length; i += 1) {
      if (i === path.length || path[i] === 0x2f) {
        out.push(path.subarray(start, i));
        start = i + 1;
      }
    }
    return out;
  };
  return [...paths].sort((a, b) => {
    const x = segments(a);
    const y = segments(b);
    for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
      const byName = Buffer.compare(x[i]!, y[i]!);
      if (byName !== 0) return byName;
    }
    return x.length - y.length;
  });
}

async function walk(config: Parameters<typeof openSource>[0]): Promise<{ entries: SourceEntry[]; problems: { path: string; problem: string; detail: string }[] }> {
  const entries: SourceEntry[] = [];
  const problems: { path: string; problem: string; detail: string }[] = [];
  for await (const entry of openSource(config).entries((path, problem, detail) => problems.push({ path, problem, detail }))) entries.push(entry);
  return { entries, problems };
}

describe('directory source', () => {
  let root: string;
  let socketServer: Server;
  const invalidName = Buffer.from([0x66, 0xff, 0x2e, 0x74]); // "f\xff.t"

  beforeAll(async () => {
    root = await makeTempDir('tidemark-files-walk');
    for (const dir of ['a', 'a/deep/er', 'a-b', 'empty', 'docs/2024/tmp', 'docs/2025', 'node_modules/x']) await mkdir(join(root, dir), { recursive: true });
    for (const file of ['a/b', 'a/deep/er/f', 'a.txt', 'a b', 'a-b/c', 'line\nbreak', ' leading', 'docs/2024/x.pdf', 'docs/2024/x.doc', 'docs/2024/tmp/t.pdf', 'docs/2025/y.pdf', 'node_modules/x/i.js']) {
      await writeFile(join(root, file), `content of ${file}`);
    }
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), invalidName]), 'bytes');
    await symlink('nowhere', join(root, 'dangling'));
    await symlink('loop2', join(root, 'loop1'));
    await symlink('loop1', join(root, 'loop2'));
    await symlink('.', join(root, 'a/self'));
    await link(join(root, 'a/b'), join(root, 'hard'));
    execFileSync('mkfifo', [join(root, 'fifo')]);
    socketServer = createServer();
    await new Promise<void>((resolve) => socketServer.listen(join(root, 'sock'), resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => socketServer.close(resolve));
    await removeTempDir(root);
  });

  it('yields every entry in walk order (spaces, newlines, invalid UTF-8, names sorting around "/")', async () => {
    const { entries, problems } = await walk({ kind: 'directory', path: root });
    const paths = entries.map((entry) => bytesOf(entry.path, entry.pathBase64));
    expect(paths.map(String)).toEqual(walkOrder(paths).map(String));
    for (let i = 1; i < paths.length; i += 1) expect(compareTreePaths(paths[i - 1]!, paths[i]!)).toBeLessThan(0);
    expect(entries.map((entry) => entry.path)).toEqual([
      ' leading', 'a', 'a/b', 'a/deep', 'a/deep/er', 'a/deep/er/f', 'a/self', 'a b', 'a-b', 'a-b/c', 'a.txt', 'dangling',
      'docs', 'docs/2024', 'docs/2024/tmp', 'docs/2024/tmp/t.pdf', 'docs/2024/x.doc', 'docs/2024/x.pdf', 'docs/2025', 'docs/2025/y.pdf',
      'empty', 'f\uFFFD.t', 'hard', 'line\nbreak', 'loop1', 'loop2', 'node_modules', 'node_modules/x', 'node_modules/x/i.js',
    ]);
    const invalid = entries.find((entry) => entry.pathBase64 !== undefined);
    expect(bytesOf(invalid!.path, invalid!.pathBase64).equals(invalidName)).toBe(true);
    // FIFOs and sockets are reported, not stored (nor opened: a FIFO would block the walk).
    expect(problems.map(({ path, problem }) => `${path} ${problem}`).sort()).toEqual(['fifo unsupported_type', 'sock unsupported_type']);
  });

  it('records symlinks (dangling, looping, to a parent) without following them', async () => {
    const { entries } = await walk({ kind: 'directory', path: root });
    const links = Object.fromEntries(entries.filter((entry) => entry.type === 'symlink').map((entry) => [entry.path, entry.linkTarget]));
    expect(links).toEqual({ 'a/self': '.', dangling: 'nowhere', loop1: 'loop2', loop2: 'loop1' });
    expect(entries.filter((entry) => entry.path.startsWith('a/self/'))).toEqual([]);
  });

  it('gives files with several links a link group, and file metadata for change detection', async () => {
    const { entries } = await walk({ kind: 'directory', path: root });
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    const first = byPath.get('a/b')!;
    expect(first.linkGroup).toBeDefined();
    expect(byPath.get('hard')!.linkGroup).toBe(first.linkGroup);
    expect(byPath.get('a.txt')!.linkGroup).toBeUndefined();
    expect(first).toMatchObject({ type: 'file', size: 'content of a/b'.length, mode: 0o644 });
    expect(first.inode).toBeGreaterThan(0);
    expect(first.mtimeNs).toMatch(/^\d{19}$/);
    expect(byPath.get('empty')).toMatchObject({ type: 'dir', size: 0 });
  });

  it('takes a file when it matches an include and no exclude; excluded directories are not walked', async () => {
    const { entries } = await walk({ kind: 'directory', path: root, include: ['docs/**/*.pdf', 'a.txt'], exclude: ['**/tmp', 'node_modules'] });
    // Directories that are only passed through appear because something under them is taken.
    expect(entries.map((entry) => entry.path)).toEqual(['a.txt', 'docs', 'docs/2024', 'docs/2024/x.pdf', 'docs/2025', 'docs/2025/y.pdf']);
    const excludeOnly = await walk({ kind: 'directory', path: root, exclude: ['node_modules/**', '**/*.doc'] });
    expect(excludeOnly.entries.map((entry) => entry.path).filter((path) => path.startsWith('node_modules') || path.endsWith('.doc'))).toEqual([]);
    expect(excludeOnly.entries.map((entry) => entry.path)).toContain('empty');
  });

  it('opens content without following a symlink put in place of the file, and restat sees an append', async () => {
    const source = openSource({ kind: 'directory', path: root });
    const entry: SourceEntry = { path: 'a.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', size: 0 };
    const chunks: Buffer[] = [];
    for await (const chunk of await source.open(entry)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('content of a.txt');
    appendFileSync(join(root, 'a.txt'), '!');
    expect((await source.restat(entry))?.size).toBe('content of a.txt!'.length);
    expect(await source.restat({ ...entry, path: 'gone' })).toBeUndefined();
    await expect(source.open({ ...entry, path: 'loop1' })).rejects.toThrow(/replaced by a symlink/);
  });

  it('a missing root is SOURCE_UNAVAILABLE (an unmounted volume comes back), a file as root CONFIG_INVALID', async () => {
    await expect(walk({ kind: 'directory', path: join(root, 'missing') })).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: true });
    await expect(walk({ kind: 'directory', path: join(root, 'a.txt') })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
