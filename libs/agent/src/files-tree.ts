// What the files agent and the verifier share about a committed files snapshot: its facts, its
// tree read back from the bucket, and the chunk repository opened with the keys its chunk ids
// were made with.
import { FilesSourceFacts, TidemarkError, type Manifest } from '@tidemark/contracts';
import { openDecoded, type ArtifactStore, type StorageBackend } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import { openChunkRepository, type BlobLocation, type ChunkId, type ChunkRepository } from '@tidemark/chunks';
import { parseTree, TREE_FORMAT, type TreeEntry, type TreeSegmentRef } from '@tidemark/files';

/** The facts of a files snapshot; INTEGRITY_FORMAT when the manifest is not one. */
export function filesFactsOf(manifest: Manifest): FilesSourceFacts {
  if (manifest.engine !== 'files' || manifest.format !== TREE_FORMAT) {
    throw new TidemarkError('INTEGRITY_FORMAT', `artifact ${manifest.id} of ${manifest.engine}/${manifest.target} has format ${JSON.stringify(manifest.format)}, not a files snapshot (${TREE_FORMAT})`);
  }
  try {
    return FilesSourceFacts.parse(manifest.source, 'source');
  } catch (cause) {
    throw new TidemarkError('INTEGRITY_FORMAT', `files snapshot ${manifest.id} has unreadable facts: ${(cause as Error).message}`, { cause });
  }
}

export interface CommittedTreeOptions {
  /** The chunk repository a version 2 tree's segments are read from; opened for the snapshot when not given. */
  readonly repository?: ChunkRepository;
  /** Told every segment the tree references (the garbage collector keeps them). */
  readonly onSegment?: (ref: TreeSegmentRef) => void;
}

/** The snapshot's tree entries in walk order, decoded from the bucket; the stored object is released when iteration ends. */
export async function* committedTree(store: ArtifactStore, manifest: Manifest, keys: KeyRing, options: CommittedTreeOptions = {}): AsyncGenerator<TreeEntry> {
  const decoded = await openDecoded(store, manifest, keys);
  let repository: Promise<ChunkRepository> | undefined = options.repository && Promise.resolve(options.repository);
  const readSegments = async (refs: readonly TreeSegmentRef[]): Promise<Buffer[]> => {
    const chunks = await (repository ??= repositoryFor(store.backend, keys, manifest));
    return readChunksOf(chunks, refs.map((ref) => ref.segment), (id) => `segment ${id} of the tree of files snapshot ${manifest.id}`);
  };
  try {
    yield* parseTree(decoded, { readSegments, ...(options.onSegment ? { onSegment: options.onSegment } : {}) }).entries;
  } finally {
    decoded.destroy();
  }
}

/**
 * Chunks by id, in the order asked: one ranged read per pack and decodes in batches
 * (readPackChunks), where a read per chunk cost a stream and a worker round trip each (a tree of
 * 20,000 files has some 2,500 segments). A repository opened earlier may not know the packs of a
 * snapshot committed since: it reloads the index once before it calls a chunk missing.
 */
async function readChunksOf(repository: ChunkRepository, ids: readonly ChunkId[], named: (id: ChunkId) => string): Promise<Buffer[]> {
  const byPack = new Map<string, BlobLocation[]>();
  let refreshed = false;
  for (const id of new Set(ids)) {
    let location = repository.locate(id);
    if (location === undefined && !refreshed) {
      refreshed = true;
      await repository.refresh();
      location = repository.locate(id);
    }
    if (location === undefined) throw new TidemarkError('STORAGE_NOT_FOUND', `${named(id)} is in no pack of the repository; rebuild the index, then verify`);
    const locations = byPack.get(location.packId);
    if (locations === undefined) byPack.set(location.packId, [location]);
    else locations.push(location);
  }
  const plains = new Map<ChunkId, Buffer>();
  await Promise.all(
    [...byPack].map(async ([packId, locations]) => {
      for await (const chunk of repository.readPackChunks(packId, locations)) if (chunk.plain !== undefined) plains.set(chunk.location.id, chunk.plain);
    }),
  );
  return ids.map((id) => {
    const plain = plains.get(id);
    if (plain === undefined) throw new TidemarkError('INTEGRITY_FORMAT', `${named(id)} was not read back from its pack`);
    return plain;
  });
}

/**
 * The key ring chunk ids are made with: keyed (HMAC) when the target encrypts, plain SHA-256
 * otherwise; reading keeps every key, so older snapshots stay readable.
 */
export const chunkKeyRing = (keys: KeyRing, encrypted: boolean): KeyRing => (encrypted ? keys : { current: undefined, get: (id) => keys.get(id) });

/** The shared chunk repository of the bucket, opened to read `manifest`'s chunks. */
export function repositoryFor(backend: StorageBackend, keys: KeyRing, manifest: Manifest): Promise<ChunkRepository> {
  const facts = filesFactsOf(manifest);
  return openChunkRepository({ backend, keyRing: chunkKeyRing(keys, facts.chunkIds === 'hmac-sha256'), compression: manifest.pipeline.compression });
}
