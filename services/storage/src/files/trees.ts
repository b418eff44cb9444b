// Reading the trees of files snapshots (engine "files"): what catalog.tree lists and what the
// chunk garbage collector counts as referenced.
import { TidemarkError, type Manifest } from '@tidemark/contracts';
import { committedTree } from '@tidemark/agent';
import type { TreeEntry } from '@tidemark/files';
import { keyRingOf, type KeyRing } from '@tidemark/pipeline';
import type { ArtifactStore } from '@tidemark/storage';

/** A snapshot's tree entries in walk order. Stopping early (break) releases the stored object. */
export type TreeReader = (manifest: Manifest) => AsyncIterable<TreeEntry>;

/**
 * Trees decoded from the bucket: decrypted with `keyRing` (the storage service's, when it could
 * load one), decompressed and checked against the manifest's sha256 as any artifact's data.
 */
export function bucketTreeReader(store: ArtifactStore, keyRing: KeyRing | undefined): TreeReader {
  const keys = keyRing ?? keyRingOf(undefined);
  return async function* readTree(manifest) {
    if (manifest.pipeline.encryption !== null && keys.get(manifest.pipeline.encryption.keyId) === undefined) {
      throw new TidemarkError('ENCRYPTION_KEY_MISSING', `the tree of files snapshot ${manifest.id} (${manifest.target}) is encrypted with key "${manifest.pipeline.encryption.keyId}", which the storage service has not loaded: give it the encryption key (encryption.keyFile or TIDEMARK_ENCRYPTION_KEY) and old keys (encryption.oldKeyFiles)`);
    }
    yield* committedTree(store, manifest, keys);
  };
}

/** The files snapshots' manifests (kind tree) among `manifests`. */
export const isFilesSnapshot = (manifest: Pick<Manifest, 'engine' | 'kind'>): boolean => manifest.engine === 'files' && manifest.kind === 'tree';
