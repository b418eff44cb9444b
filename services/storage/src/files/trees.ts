// Reading the trees of files snapshots (engine "files"): what catalog.tree lists and what the
// chunk garbage collector counts as referenced.
import { TidemarkError, type Manifest } from '@tidemark/contracts';
import { committedTree, filesFactsOf, repositoryFor } from '@tidemark/agent';
import type { ChunkRepository } from '@tidemark/chunks';
import type { TreeEntry, TreeSegmentRef } from '@tidemark/files';
import { keyRingOf, type KeyRing } from '@tidemark/pipeline';
import type { ArtifactStore } from '@tidemark/storage';

/**
 * A snapshot's tree entries in walk order; `onSegment` is told each segment of the tree that the
 * chunk repository holds (version 2). Stopping early (break) releases the stored object.
 */
export type TreeReader = (manifest: Manifest, onSegment?: (ref: TreeSegmentRef) => void) => AsyncIterable<TreeEntry>;

/**
 * Trees decoded from the bucket: decrypted with `keyRing` (the storage service's, when it could
 * load one), decompressed and checked against the manifest's sha256 as any artifact's data.
 */
export function bucketTreeReader(store: ArtifactStore, keyRing: KeyRing | undefined): TreeReader {
  const keys = keyRing ?? keyRingOf(undefined);
  // One repository per kind of chunk id (keyed or not), opened once: a collection reads every
  // snapshot's tree, and opening one per snapshot would load the whole index each time.
  const repositories = new Map<string, Promise<ChunkRepository>>();
  return async function* readTree(manifest, onSegment) {
    if (manifest.pipeline.encryption !== null && keys.get(manifest.pipeline.encryption.keyId) === undefined) {
      throw new TidemarkError('ENCRYPTION_KEY_MISSING', `the tree of files snapshot ${manifest.id} (${manifest.target}) is encrypted with key "${manifest.pipeline.encryption.keyId}", which the storage service has not loaded: give it the encryption key (encryption.keyFile or TIDEMARK_ENCRYPTION_KEY) and old keys (encryption.oldKeyFiles)`);
    }
    const chunkIds = filesFactsOf(manifest).chunkIds;
    let repository = repositories.get(chunkIds);
    if (repository === undefined) {
      repository = repositoryFor(store.backend, keys, manifest);
      repositories.set(chunkIds, repository);
      repository.catch(() => repositories.delete(chunkIds));
    }
    yield* committedTree(store, manifest, keys, { repository: await repository, ...(onSegment ? { onSegment } : {}) });
  };
}

/** The files snapshots' manifests (kind tree) among `manifests`. */
export const isFilesSnapshot = (manifest: Pick<Manifest, 'engine' | 'kind'>): boolean => manifest.engine === 'files' && manifest.kind === 'tree';
