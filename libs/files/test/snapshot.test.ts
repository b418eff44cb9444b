import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, rmSync } from 'node:fs';
import { chmod, link, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FilesSourceFacts } from '@tidemark/contracts';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { openSource, takeSnapshot, type FilesSource, type SnapshotOptions, type SourceEntry, type TreeEntry } from '../src/index.js';
import { contentOf, fromArray, memoryRepository, readTree, type MemoryRepository } from './helpers.js';

const execFileAsync = promisify(execFile);
const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

interface Taken {
  entries: TreeEntry[];
  /** The tree's segment ids, in order. */
  segments: string[];
  facts: FilesSourceFacts;
  byPath: Map<string, TreeEntry>;
}

async function snapshot(options: Partial<SnapshotOptions> & Pick<SnapshotOptions, 'source' | 'repository'>): Promise<Taken> {
  const result = takeSnapshot({ sessionId: `session-${randomBytes(4).toString('hex')}`, ...options });
  try {
    const { entries, segments } = await readTree(result.tree, options.repository);
    const facts = await result.facts;
    return { entries, segments, facts, byPath: new Map(entries.map((entry) => [entry.path, entry])) };
  } finally {
    await result.close();
  }
}

/** The source, with every open() (or localPath(), a worker's open) counted and (optionally) failing for chosen paths. */
function counted(source: FilesSource, failOpen: (path: string) => Error | undefined = () => undefined): FilesSource & { opened: string[] } {
  const opened: string[] = [];
  const opening = (entry: SourceEntry): void => {
    opened.push(entry.path);
    const failure = failOpen(entry.path);
    if (failure !== undefined) throw failure;
  };
  const { localPath } = source;
  return {
    ...source,
    opened,
    open: async (entry) => {
      opening(entry);
      return source.open(entry);
    },
    ...(localPath === undefined ? {} : { localPath: (entry: SourceEntry) => (opening(entry), localPath(entry)) }),
  };
}

describe('takeSnapshot', () => {
  let root: string;
  let repository: MemoryRepository;

  beforeEach(async () => {
    root = await makeTempDir('tidemark-files-snap');
    repository = memoryRepository();
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it('stores every file as chunks with its sha256, and links, dirs and problems as entries, in walk order', async () => {
    const big = randomBytes(100_000);
    await mkdir(join(root, 'docs/empty'), { recursive: true });
    await writeFile(join(root, 'docs/big.bin'), big);
    await writeFile(join(root, 'docs/copy.bin'), big); // same content: its chunks are stored once
    await writeFile(join(root, 'docs/empty.txt'), '');
    await writeFile(join(root, 'line\nbreak'), 'x');
    await link(join(root, 'docs/big.bin'), join(root, 'hard.bin'));
    await symlink('../outside', join(root, 'docs/up'));
    await symlink('loop', join(root, 'loop'));
    execFileSync('mkfifo', [join(root, 'fifo')]);

    const result = takeSnapshot({ source: openSource({ kind: 'directory', path: root }), repository, sessionId: 'snap-1', concurrency: 3 });
    let flushedBeforeEnd = false;
    result.tree.on('end', () => (flushedBeforeEnd = repository.flushedSessions.includes('snap-1')));
    const { header, entries, segments } = await readTree(result.tree, repository);
    const facts = await result.facts;
    expect(flushedBeforeEnd).toBe(true);
    expect(repository.closedSessions).toEqual([]);
    await result.close();
    expect(repository.closedSessions).toEqual(['snap-1']);

    expect(header).toMatchObject({ treeVersion: 2, sourceKind: 'directory', location: root });
    expect(entries.map((entry) => `${entry.type} ${entry.path}`)).toEqual([
      'dir docs', 'file docs/big.bin', 'file docs/copy.bin', 'dir docs/empty', 'file docs/empty.txt', 'symlink docs/up', 'hardlink hard.bin', 'file line\nbreak', 'symlink loop',
    ]);
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    expect(contentOf(repository, byPath.get('docs/big.bin')!).equals(big)).toBe(true);
    expect(byPath.get('docs/big.bin')).toMatchObject({ size: big.length, sha256: sha256(big) });
    expect(byPath.get('docs/copy.bin')!.chunks).toEqual(byPath.get('docs/big.bin')!.chunks);
    expect(byPath.get('docs/empty.txt')).toMatchObject({ size: 0, chunks: [], sha256: sha256('') });
    expect(byPath.get('hard.bin')).toMatchObject({ linkTo: 'docs/big.bin', size: 0 });
    expect(byPath.get('hard.bin')!.chunks).toBeUndefined();
    expect(byPath.get('docs/up')!.linkTarget).toBe('../outside');

    const chunksOfBig = byPath.get('docs/big.bin')!.chunks!.length;
    expect(facts).toMatchObject({
      sourceKind: 'directory', files: 4, directories: 2, symlinks: 2, hardLinks: 1, totalBytes: 2 * big.length + 1, unchangedFiles: 0,
      newChunks: chunksOfBig + 1, reusedChunks: chunksOfBig, newBytes: big.length + 1, reusedBytes: big.length,
      chunkIds: 'sha256', fullRehash: false, problemsCount: 1, changedDuringBackupCount: 0,
      problems: [{ path: 'fifo', problem: 'unsupported_type' }],
    });
    expect(facts.chunker).toMatchObject({ algorithm: expect.any(String), ...repository.chunker });
    // The file chunks, and the tree's segments (stored as chunks too).
    expect(segments.length).toBeGreaterThanOrEqual(1);
    expect(repository.stored).toBe(chunksOfBig + 1 + new Set(segments).size);
  });

  it('a file appended while it is read is stored as read, flagged, reported, and read again next time', async () => {
    await writeFile(join(root, 'a.log'), randomBytes(40_000));
    await writeFile(join(root, 'grow.log'), randomBytes(40_000));
    await writeFile(join(root, 'z.log'), 'steady');
    let appended = false;
    const first = await snapshot({
      source: openSource({ kind: 'directory', path: root }),
      repository,
      onProgress: ({ current }) => {
        // The hook runs when grow.log's read starts: a writer appends to it right then.
        if (current === 'grow.log' && !appended) {
          appended = true;
          appendFileSync(join(root, 'grow.log'), 'more lines\n');
        }
      },
    });
    const grown = first.byPath.get('grow.log')!;
    expect(grown.changedDuringBackup).toBe(true);
    expect(grown.size).toBe(grown.chunks!.reduce((sum, chunk) => sum + chunk.size, 0));
    expect(first.facts.changedDuringBackupCount).toBe(1);
    expect(first.facts.problems).toEqual([{ path: 'grow.log', problem: 'changed_during_backup', detail: expect.stringMatching(/stored as read/) }]);
    expect(first.byPath.get('a.log')!.changedDuringBackup).toBeUndefined();

    const source = counted(openSource({ kind: 'directory', path: root }));
    const second = await snapshot({ source, repository, parentTree: fromArray(first.entries) });
    expect(source.opened).toEqual(['grow.log']);
    expect(second.byPath.get('grow.log')!.changedDuringBackup).toBeUndefined();
    expect(second.facts.unchangedFiles).toBe(2);
  });

  it('a file deleted before its turn is reported vanished (real ENOENT), not fatal', async () => {
    await writeFile(join(root, 'a'), 'first');
    await writeFile(join(root, 'b'), 'second');
    const { byPath, facts } = await snapshot({
      source: openSource({ kind: 'directory', path: root }),
      repository,
      concurrency: 1,
      onProgress: ({ current }) => {
        if (current === 'a') rmSync(join(root, 'b'), { force: true });
      },
    });
    expect(byPath.get('b')).toMatchObject({ type: 'file', problem: 'vanished' });
    expect(byPath.get('b')!.chunks).toBeUndefined();
    expect(facts.problems).toEqual([{ path: 'b', problem: 'vanished', detail: expect.stringMatching(/ENOENT/) }]);
  });

  it('an unreadable file (open fails with EACCES, injected: root reads anything) is reported, or fails a strict backup', async () => {
    await writeFile(join(root, 'a'), 'readable');
    await writeFile(join(root, 'secret'), 'not for us');
    const denied = (path: string): Error | undefined => (path === 'secret' ? Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' }) : undefined);
    const lenient = await snapshot({ source: counted(openSource({ kind: 'directory', path: root }), denied), repository });
    expect(lenient.byPath.get('secret')).toMatchObject({ type: 'file', problem: 'unreadable' });
    expect(lenient.byPath.get('secret')!.chunks).toBeUndefined();
    expect(lenient.facts.problems).toEqual([{ path: 'secret', problem: 'unreadable', detail: expect.stringMatching(/EACCES/) }]);

    const strict = takeSnapshot({ source: counted(openSource({ kind: 'directory', path: root }), denied), repository, sessionId: 'strict', strict: true });
    await expect(readTree(strict.tree, repository)).rejects.toMatchObject({ code: 'SOURCE_UNREADABLE', retryable: false });
    await expect(strict.facts).rejects.toMatchObject({ code: 'SOURCE_UNREADABLE' });
    await strict.close();
    expect(repository.closedSessions).toContain('strict');
  });

  it('a file without read permission is unreadable: real EACCES (as root, the snapshot runs in a child process without the capabilities that bypass file modes)', async () => {
    await chmod(root, 0o755);
    await writeFile(join(root, 'secret'), 'not for us');
    await chmod(join(root, 'secret'), 0o000);
    const output = await snapshotAsOtherUser(root);
    expect(output.entries).toEqual([expect.objectContaining({ path: 'secret', type: 'file', problem: 'unreadable' })]);
    expect(output.problems).toEqual([{ path: 'secret', problem: 'unreadable', detail: expect.stringMatching(/EACCES/) }]);
  });

  it('a second backup after 1 % of the files changed reads only those and stores only their new chunks', async () => {
    const files = 200;
    for (let i = 0; i < files; i += 1) {
      const dir = join(root, `d${i % 10}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `f${i}.bin`), randomBytes(1_000 + (i % 7) * 20_000));
    }
    const first = await snapshot({ source: openSource({ kind: 'directory', path: root }), repository });
    expect(first.facts.files).toBe(files);

    appendFileSync(join(root, 'd3/f3.bin'), randomBytes(5_000)); // grew: its last chunk changes, one more may follow
    await writeFile(join(root, 'd5/f15.bin'), randomBytes(1_000 + (15 % 7) * 20_000)); // same size, new content and mtime
    await utimes(join(root, 'd5/f15.bin'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const storedBefore = repository.stored;
    const source = counted(openSource({ kind: 'directory', path: root }));
    const second = await snapshot({ source, repository, parentTree: fromArray(first.entries) });

    expect(source.opened.sort()).toEqual(['d3/f3.bin', 'd5/f15.bin']);
    const firstChunks = new Set(first.entries.flatMap((entry) => (entry.chunks ?? []).map((chunk) => chunk.id)));
    const newChunks = new Set(second.entries.flatMap((entry) => (entry.chunks ?? []).map((chunk) => chunk.id)).filter((id) => !firstChunks.has(id)));
    // Besides those chunks, only the tree's segments holding the two changed entries were stored again.
    const newSegments = second.segments.filter((id) => !first.segments.includes(id));
    expect(first.segments.length).toBeGreaterThan(10);
    expect(newSegments.length).toBeGreaterThanOrEqual(1);
    expect(newSegments.length).toBeLessThanOrEqual(2);
    expect(repository.stored - storedBefore).toBe(newChunks.size + newSegments.length);
    expect(second.facts).toMatchObject({ unchangedFiles: files - 2, newChunks: newChunks.size, files });
    expect(second.facts.newBytes).toBeLessThan(first.facts.newBytes / 20);
    for (const path of ['d3/f3.bin', 'd5/f15.bin']) expect(second.byPath.get(path)!.sha256).not.toBe(first.byPath.get(path)!.sha256);
    expect(second.byPath.get('d1/f1.bin')).toEqual(first.byPath.get('d1/f1.bin'));

    // A parent whose chunk is gone from the repository (collected) does not count: that file is read again.
    const lost = second.byPath.get('d7/f7.bin')!.chunks![0]!.id;
    repository.chunks.delete(lost);
    const third = counted(openSource({ kind: 'directory', path: root }));
    await snapshot({ source: third, repository, parentTree: fromArray(second.entries) });
    expect(third.opened).toEqual(['d7/f7.bin']);
    expect(repository.chunks.has(lost)).toBe(true);

    const rehash = counted(openSource({ kind: 'directory', path: root }));
    const full = await snapshot({ source: rehash, repository, parentTree: fromArray(second.entries), fullRehash: true, concurrency: 8 });
    expect(rehash.opened).toHaveLength(files);
    expect(full.facts).toMatchObject({ fullRehash: true, unchangedFiles: 0, newChunks: 0 });
    expect(full.entries.map((entry) => entry.path)).toEqual(second.entries.map((entry) => entry.path));
  });

  it('problems past 1000 are counted, not listed', async () => {
    const source = openSource({ kind: 'directory', path: root });
    await writeFile(join(root, 'only'), 'x');
    const noisy: FilesSource = {
      ...source,
      entries: (onProblem) => {
        for (let i = 0; i < 1500; i += 1) onProblem(`gone-${i}`, 'vanished', 'ENOENT');
        return source.entries(onProblem);
      },
    };
    const { facts } = await snapshot({ source: noisy, repository });
    expect(facts.problems).toHaveLength(1000);
    expect(facts.problemsCount).toBe(1500);
  });

  it('a tree stream destroyed early rejects the facts and stops reading', async () => {
    for (let i = 0; i < 50; i += 1) await writeFile(join(root, `f${i}`), randomBytes(50_000));
    const result = takeSnapshot({ source: openSource({ kind: 'directory', path: root }), repository, sessionId: 'abandoned' });
    for await (const _line of result.tree) {
      void _line;
      break;
    }
    await expect(result.facts).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    await result.close();
    expect(repository.flushedSessions).not.toContain('abandoned');
  });
});

/**
 * Runs a snapshot of `directory` with a throwaway repository in a child node process. Root reads
 * any file whatever its mode, so as root the child runs without CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH (util-linux's setpriv): still root, so it reads the repository's modules
 * under a 0700 checkout, which another OS user could not.
 */
async function snapshotAsOtherUser(directory: string): Promise<{ entries: TreeEntry[]; problems: FilesSourceFacts['problems'] }> {
  const files = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), '../dist/index.js')).href;
  const chunks = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), '../../chunks/dist/index.js')).href;
  const script = `
    const { openSource, takeSnapshot, parseTree } = await import(${JSON.stringify(files)});
    const { storeFileOnThisThread } = await import(${JSON.stringify(chunks)});
    const { createHash } = await import('node:crypto');
    const stored = new Map();
    const put = async (id, plain) => (stored.set(id, Buffer.from(plain)), { stored: true, storedBytes: 0 });
    const chunkId = (plain) => createHash('sha256').update(plain).digest('hex');
    const repository = { keyed: false, chunker: { minBytes: 1, avgBytes: 2, maxBytes: 4 }, chunkId, has: () => false, openSession: async () => session, readChunk: async (id) => stored.get(id) };
    const session = { id: 's', put, storeFile: (input, onChunk, signal) => storeFileOnThisThread({ chunker: repository.chunker, chunkId: repository.chunkId, put }, input, onChunk, signal), has: () => false, flush: async () => {}, touch: async () => {}, close: async () => {} };
    const result = takeSnapshot({ source: openSource({ kind: 'directory', path: ${JSON.stringify(directory)} }), repository, sessionId: 's' });
    const entries = [];
    const tree = [];
    for await (const piece of result.tree) tree.push(piece);
    for await (const entry of parseTree(tree, { readSegments: (refs) => Promise.all(refs.map((ref) => repository.readChunk(ref.segment))) }).entries) entries.push(entry);
    process.stdout.write(JSON.stringify({ entries, problems: (await result.facts).problems }));`;
  const node = [process.execPath, '--input-type=module', '-e', script];
  const withoutModeBypass = ['--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search', '--', ...node];
  const [command, ...args] = process.getuid?.() === 0 ? ['setpriv', ...withoutModeBypass] : node;
  const { stdout } = await execFileAsync(command!, args, { cwd: directory });
  return JSON.parse(stdout) as { entries: TreeEntry[]; problems: FilesSourceFacts['problems'] };
}

