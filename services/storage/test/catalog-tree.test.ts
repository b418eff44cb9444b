import { describe, expect, it } from 'vitest';
import { CatalogTreeReply, type Manifest } from '@tidemark/contracts';
import type { TreeEntry } from '@tidemark/files';
import { Catalog, type CatalogSource } from '../src/catalog/catalog.js';
import { listSnapshotTree, normalisePath } from '../src/handlers/catalog-tree.js';
import type { TreeReader } from '../src/files/trees.js';
import { manifest } from './fixtures.js';

const snapshot = (id: string, createdAt: string) => manifest({ id, createdAt, engine: 'files', target: 'docs', kind: 'tree', format: 'tidemark-tree-v1' });
const older = snapshot('20250101T000000Z-old', '2025-01-01T00:00:00.000Z');
const newer = snapshot('20250102T000000Z-new', '2025-01-02T00:00:00.000Z');

const file = (path: string, size = 10, extra: Partial<TreeEntry> = {}): TreeEntry => ({
  path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '1735689600123456789', size, chunks: [{ id: 'a'.repeat(64), size }], sha256: 'b'.repeat(64), ...extra,
});
const dir = (path: string): TreeEntry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: '1735689600000000000', size: 0 });

// Walk order: depth first, siblings by name bytes ("cases" < "cases.txt", and "cases/…" right after "cases").
const newestTree: TreeEntry[] = [
  dir('cases'),
  dir('cases/2023'),
  file('cases/2023/a.pdf'),
  dir('cases/2024'),
  file('cases/2024/b.pdf', 2048),
  file('cases/2024/c.pdf', 1, { changedDuringBackup: true }),
  dir('cases/2024/sub'),
  file('cases/2024/sub/d.pdf'),
  file('cases/index.txt'),
  { ...file('cases/same.txt', 0), type: 'hardlink', chunks: undefined, linkTo: 'cases/index.txt' },
  file('cases.txt'),
  { ...dir('link'), type: 'symlink', linkTarget: '../outside' },
  file('z-last'),
];

function fixture() {
  const manifests = [older, newer];
  const source: CatalogSource = {
    listManifests: async () => manifests,
    readManifest: async (_e, _t, id) => manifests.find((m) => m.id === id),
    readVerification: async () => undefined,
  };
  const catalog = new Catalog(source);
  const reads: string[] = [];
  const readTree: TreeReader = async function* (m: Manifest) {
    reads.push(m.id);
    const tree = m.id === newer.id ? newestTree : [file('only-in-old')];
    for (const entry of tree) {
      reads.push(entry.path);
      yield entry;
    }
  };
  return { catalog, readTree, reads };
}

const ok = (reply: unknown) => {
  if (typeof reply === 'object' && reply !== null && 'error' in reply) throw new Error(JSON.stringify(reply));
  return CatalogTreeReply.parse(reply);
};
const paths = (reply: unknown) => ok(reply).entries.map((e) => e.path);

describe('catalog.tree', () => {
  it('lists the top level of the newest snapshot by default, ls-like facts included', async () => {
    const { catalog, readTree } = fixture();
    await catalog.rebuild();
    const reply = ok(await listSnapshotTree({ target: 'docs' }, { catalog, readTree }));
    expect(reply.artifactId).toBe(newer.id);
    expect(reply.entries.map((e) => e.path)).toEqual(['cases', 'cases.txt', 'link', 'z-last']);
    expect(reply.entries[2]).toEqual({ path: 'link', type: 'symlink', size: 0, mode: 0o755, mtime: '2025-01-01T00:00:00.000Z', linkTarget: '../outside' });
    expect(reply.entries[1]).toMatchObject({ type: 'file', size: 10, mode: 0o644, mtime: '2025-01-01T00:00:00.123Z' });
    expect(reply.truncated).toBe(false);
  });

  it('lists one directory level, or everything under it with recursive, and stops reading after it', async () => {
    const { catalog, readTree, reads } = fixture();
    await catalog.rebuild();
    expect(paths(await listSnapshotTree({ target: 'docs', path: '/cases/2024/' }, { catalog, readTree }))).toEqual(['cases/2024/b.pdf', 'cases/2024/c.pdf', 'cases/2024/sub']);
    // Read up to the first entry past cases/2024's subtree, no further.
    expect(reads.at(-1)).toBe('cases/index.txt');
    const all = ok(await listSnapshotTree({ target: 'docs', path: 'cases', recursive: true }, { catalog, readTree }));
    expect(all.entries.map((e) => e.path)).toEqual([
      'cases/2023', 'cases/2023/a.pdf', 'cases/2024', 'cases/2024/b.pdf', 'cases/2024/c.pdf', 'cases/2024/sub', 'cases/2024/sub/d.pdf', 'cases/index.txt', 'cases/same.txt',
    ]);
    expect(all.entries.find((e) => e.path === 'cases/2024/c.pdf')?.problem).toBe('changed_during_backup');
    expect(all.entries.find((e) => e.path === 'cases/same.txt')).toMatchObject({ type: 'hardlink', linkTo: 'cases/index.txt' });
  });

  it('shows a file path as that one entry', async () => {
    const { catalog, readTree } = fixture();
    await catalog.rebuild();
    expect(paths(await listSnapshotTree({ target: 'docs', path: 'cases/2024/b.pdf' }, { catalog, readTree }))).toEqual(['cases/2024/b.pdf']);
  });

  it('reads a chosen snapshot', async () => {
    const { catalog, readTree } = fixture();
    await catalog.rebuild();
    expect(paths(await listSnapshotTree({ target: 'docs', artifactId: older.id }, { catalog, readTree }))).toEqual(['only-in-old']);
  });

  it('stops at the limit and says the list is truncated', async () => {
    const { catalog, readTree } = fixture();
    await catalog.rebuild();
    const reply = ok(await listSnapshotTree({ target: 'docs', recursive: true, limit: 3 }, { catalog, readTree }));
    expect(reply.entries.map((e) => e.path)).toEqual(['cases', 'cases/2023', 'cases/2023/a.pdf']);
    expect(reply.truncated).toBe(true);
  });

  it('answers an unknown snapshot, target or path with a clear, non-retryable error', async () => {
    const { catalog, readTree } = fixture();
    await catalog.rebuild();
    expect(await listSnapshotTree({ target: 'docs', artifactId: '20990101T000000Z-none' }, { catalog, readTree })).toEqual({
      error: { code: 'ARTIFACT_NOT_FOUND', retryable: false, message: expect.stringMatching(/no committed files snapshot "20990101T000000Z-none" of target "docs"/) },
    });
    expect(await listSnapshotTree({ target: 'nothing' }, { catalog, readTree })).toEqual({
      error: { code: 'ARTIFACT_NOT_FOUND', retryable: false, message: expect.stringMatching(/target "nothing" has no committed files snapshot/) },
    });
    expect(await listSnapshotTree({ target: 'docs', path: 'cases/2025' }, { catalog, readTree })).toEqual({
      error: { code: 'STORAGE_NOT_FOUND', retryable: false, message: expect.stringMatching(/holds no path "cases\/2025"/) },
    });
    expect(await listSnapshotTree({ target: 'docs', path: '../etc' }, { catalog, readTree })).toEqual({
      error: { code: 'COMMAND_INVALID', retryable: false, message: expect.stringMatching(/"\.\." is not allowed/) },
    });
    expect(await listSnapshotTree({ path: 'x' }, { catalog, readTree })).toMatchObject({ error: { code: 'COMMAND_INVALID', retryable: false } });
  });

  it('normalises what people type', () => {
    expect(normalisePath('/')).toBe('');
    expect(normalisePath('./cases//2024/')).toBe('cases/2024');
  });
});
