// The collector's referenced set and its refusal to run on partial knowledge; the collection
// itself (packs condemned and deleted) is proven on real storage in chunk-gc.integration.test.ts.
import { describe, expect, it } from 'vitest';
import { TidemarkError, type Manifest } from '@tidemark/contracts';
import type { GarbageCollectionReport, ReferencedChunks } from '@tidemark/chunks';
import type { TreeEntry } from '@tidemark/files';
import { createLogger } from '@tidemark/runtime';
import { createMemoryBackend } from '@tidemark/storage';
import { keyRingOf } from '@tidemark/pipeline';
import { runChunkGc, describeReport } from '../src/files/chunk-gc.js';
import { manifest } from './fixtures.js';

const logger = createLogger('chunk-gc-test', { TIDEMARK_LOG_LEVEL: 'silent' });
const snapshot = (id: string, target = 'docs') => manifest({ id, engine: 'files', target, kind: 'tree', format: 'tidemark-tree-v1' });
const withChunks = (path: string, ...ids: string[]): TreeEntry => ({
  path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtimeNs: '0', size: ids.length, chunks: ids.map((id) => ({ id, size: 1 })),
});

const emptyReport: GarbageCollectionReport = {
  referencedChunks: 0, packs: 0, packsCondemned: [], packsDeleted: [], packsRescued: [], bytesDeleted: 0, bytesUnreferencedInLivePacks: 0,
  indexFilesBefore: 0, indexFilesAfter: 0, liveSessions: [],
};

/** A collector that asks for the referenced set, as the real one does, before it would condemn or delete. */
function recordingCollector() {
  const seen: { referenced?: ReadonlySet<string>; sweptAfterwards: boolean } = { sweptAfterwards: false };
  const collect = async (_options: unknown, referencedChunks: ReferencedChunks): Promise<GarbageCollectionReport> => {
    seen.referenced = await referencedChunks();
    seen.sweptAfterwards = true;
    return { ...emptyReport, referencedChunks: seen.referenced.size };
  };
  return { seen, collect };
}

const repository = { backend: createMemoryBackend(), keyRing: keyRingOf(undefined), compression: 'none' as const };
const settings = { graceMs: 3600_000, sessionStaleMs: 6 * 3600_000 };

describe('runChunkGc', () => {
  it('references every chunk of every committed files snapshot, and the segments of its tree, read from the bucket when the collector asks', async () => {
    const trees = new Map<string, TreeEntry[]>([
      ['s1', [withChunks('a', 'c1', 'c2'), { ...withChunks('b'), type: 'hardlink', chunks: undefined, linkTo: 'a' }]],
      ['s2', [withChunks('x/y', 'c2', 'c3')]],
    ]);
    let listed = 0;
    const store = {
      listManifests: async (filter: { engine?: string } = {}) => {
        listed += 1;
        expect(filter).toEqual({ engine: 'files' });
        return [snapshot('s1'), snapshot('s2', 'models'), { ...snapshot('odd'), kind: 'logical' } as Manifest];
      },
    };
    const { seen, collect } = recordingCollector();
    const result = await runChunkGc({
      store, logger, settings, repository, collect,
      // s1's tree is a version 2 one: its segments are chunks too.
      readTree: async function* (m, onSegment) {
        if (m.id === 's1') for (const segment of ['seg1', 'seg2']) onSegment?.({ segment, size: 1 });
        yield* trees.get(m.id) ?? [];
      },
    });
    expect(listed).toBe(1);
    expect([...(seen.referenced ?? [])].sort()).toEqual(['c1', 'c2', 'c3', 'seg1', 'seg2']);
    expect(result).toMatchObject({ ok: true, snapshots: 2 });
  });

  it('deletes nothing when a tree cannot be decoded, and says which snapshot and why', async () => {
    const { seen, collect } = recordingCollector();
    const result = await runChunkGc({
      store: { listManifests: async () => [snapshot('good'), snapshot('locked')] }, logger, settings, repository, collect,
      readTree: async function* (m) {
        if (m.id === 'locked') throw new TidemarkError('ENCRYPTION_KEY_MISSING', 'the tree is encrypted with key "k2", which the storage service has not loaded');
        yield withChunks('a', 'c1');
      },
    });
    expect(seen.sweptAfterwards).toBe(false);
    expect(result).toEqual({
      ok: false,
      error: { code: 'ENCRYPTION_KEY_MISSING', retryable: false, message: expect.stringMatching(/tree of files snapshot locked \(target "docs"\) cannot be read.*key "k2"/) },
    });
  });

  it('deletes nothing when a files manifest cannot be read', async () => {
    const { seen, collect } = recordingCollector();
    const result = await runChunkGc({
      store: {
        listManifests: async (_filter: unknown, onInvalid?: (key: string, error: unknown) => void) => {
          onInvalid?.('artifacts/files/docs/x/manifest.json', new TidemarkError('INTEGRITY_FORMAT', 'not JSON'));
          return [];
        },
      },
      logger, settings, repository, collect, readTree: async function* () {},
    });
    expect(seen.sweptAfterwards).toBe(false);
    expect(result).toMatchObject({ ok: false, error: { code: 'INTEGRITY_FORMAT', message: expect.stringMatching(/artifacts\/files\/docs\/x\/manifest.json cannot be read/) } });
  });

  it('reports a collection in one readable line', () => {
    const line = describeReport({
      ...emptyReport, referencedChunks: 120, packs: 9, packsCondemned: ['p1', 'p2'], packsDeleted: ['p0'], bytesDeleted: 16 * 1048576, indexFilesBefore: 4, indexFilesAfter: 1, liveSessions: ['a1'],
    }, 3);
    expect(line).toBe('chunk garbage collection: 3 snapshot(s) reference 120 chunk(s) in 9 pack(s); 2 pack(s) condemned, 1 deleted (16.0 MiB), 0 rescued; '
      + '0.0 MiB unreferenced inside packs still in use; index files 4 -> 1; 1 running backup(s) held deletions back');
  });
});
