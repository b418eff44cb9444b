// What the files agent and the verifier share about a committed files snapshot: its facts, its
// tree read back from the bucket, and the chunk repository opened with the keys its chunk ids
// were made with.
import { FilesSourceFacts, TidemarkError, type Manifest } from '@tidemark/contracts';
import { openDecoded, type ArtifactStore, type StorageBackend } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import { openChunkRepository, type ChunkRepository } from '@tidemark/chunks';
import { parseTree, TREE_FORMAT, type TreeEntry } from '@tidemark/files';

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

/** The snapshot's tree entries in walk order, decoded from the bucket; the stored object is released when iteration ends. */
export async function* committedTree(store: ArtifactStore, manifest: Manifest, keys: KeyRing): AsyncGenerator<TreeEntry> {
  const decoded = await openDecoded(store, manifest, keys);
  try {
    yield* parseTree(decoded).entries;
  } finally {
    decoded.destroy();
  }
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
