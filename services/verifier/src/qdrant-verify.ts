// Proves a Qdrant artifact by restoring it into a scratch collection of the sandbox Qdrant and
// comparing the restored copy with the manifest's facts (points count, sample fingerprint,
// recorded top-k probes). Free of NATS: the handler maps the result to events.
//   - a snapshot (SNAPSHOT_FORMAT): the decoded bytes stream into the snapshot upload, with
//     `priority` passed explicitly and the checksum recorded at backup time;
//   - an export or incremental (EXPORT_FORMAT): the chain is read from the bucket (parentId up to
//     the full export) and applied with restoreChain.
// The scratch collection is always deleted, whatever happened.
import { reportingBytes } from '@tidemark/runtime';
import type { Readable } from 'node:stream';
import { TidemarkError, type Manifest, type QdrantSourceFacts, type VerificationCheck } from '@tidemark/contracts';
import { openDecoded, type ArtifactStore } from '@tidemark/storage';
import type { KeyRing } from '@tidemark/pipeline';
import { EXPORT_FORMAT, SNAPSHOT_FORMAT, chainApplyOrder, compareWithFacts, mapQdrantError, qdrantFactsOf, restoreChain, type QdrantPort } from '@tidemark/qdrant';

export interface QdrantVerifyDeps {
  readonly store: ArtifactStore;
  readonly keys: KeyRing;
}

export interface QdrantVerifyProgress {
  /** Bytes of the artifact read into the sandbox: the verification's progress. */
  readonly progress: (what?: string) => void;
  readonly signal?: AbortSignal;
  /** Told when the scratch collection could not be deleted (it must then be deleted by hand). */
  readonly onCleanupError?: (error: unknown, collection: string) => void;
}

/**
 * The sandbox port, with every failure mapped: an unreachable sandbox is SANDBOX_UNAVAILABLE
 * (retryable), whatever else Qdrant says keeps mapQdrantError's code.
 */
export function sandboxPort(port: QdrantPort): QdrantPort {
  return new Proxy(port, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } catch (error) {
          const mapped = mapQdrantError(error, `sandbox ${String(key)}`);
          if (mapped.code !== 'SOURCE_UNAVAILABLE') throw mapped;
          throw new TidemarkError('SANDBOX_UNAVAILABLE', `the qdrant sandbox could not be reached (${mapped.message}); check sandbox.qdrant`, { cause: error });
        }
      };
    },
  });
}

/** Restores into `scratch`, compares with the facts, and deletes `scratch` whatever happened. */
export async function verifyQdrantArtifact(
  sandbox: QdrantPort,
  scratch: string,
  manifest: Manifest,
  deps: QdrantVerifyDeps,
  progress: QdrantVerifyProgress,
): Promise<VerificationCheck[]> {
  const facts = qdrantFactsOf(manifest);
  const port = sandboxPort(sandbox);
  const opened: Readable[] = [];
  const abort = () => {
    const reason: unknown = progress.signal?.reason;
    for (const stream of opened) stream.destroy(reason instanceof Error ? reason : new TidemarkError('SHUTTING_DOWN', 'verification interrupted by shutdown'));
  };
  const open = async (artifact: Manifest): Promise<Readable> => {
    const decoded = await openDecoded(deps.store, artifact, deps.keys);
    // Consumers see errors through their own reads; these keep a late error (after a failed
    // upsert, say) from going unhandled once nobody reads any more.
    const counted = reportingBytes(decoded, (bytes) => progress.progress(`read ${bytes} bytes of ${artifact.id}`));
    for (const stream of [counted, decoded]) {
      stream.on('error', () => undefined);
      opened.push(stream);
    }
    return counted;
  };
  // Never touch a collection that is not ours: the name is random, but check before claiming it.
  if (await port.collectionExists(scratch)) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `scratch collection ${scratch} already exists on the qdrant sandbox; delete it and retry`);
  }
  progress.signal?.addEventListener('abort', abort, { once: true });
  try {
    if (manifest.format === SNAPSHOT_FORMAT) await restoreSnapshot(port, scratch, manifest, facts, open);
    else if (manifest.format === EXPORT_FORMAT) await restoreExportChain(port, scratch, manifest, deps.store, open);
    else throw new TidemarkError('INTEGRITY_FORMAT', `qdrant artifact ${manifest.id} has format ${JSON.stringify(manifest.format)}, which the verifier cannot restore`);
    return await compareWithFacts(port, scratch, facts);
  } finally {
    progress.signal?.removeEventListener('abort', abort);
    for (const stream of opened) stream.destroy();
    await deleteScratch(port, scratch).catch((error: unknown) => progress.onCleanupError?.(error, scratch));
  }
}

async function deleteScratch(port: QdrantPort, scratch: string): Promise<void> {
  if (await port.collectionExists(scratch)) await port.deleteCollection(scratch);
}

async function restoreSnapshot(port: QdrantPort, scratch: string, manifest: Manifest, facts: QdrantSourceFacts, open: (m: Manifest) => Promise<Readable>): Promise<void> {
  const checksum = facts.snapshot?.sha256;
  if (checksum === undefined) {
    throw new TidemarkError('INTEGRITY_FORMAT', `snapshot artifact ${manifest.id} records no snapshot sha256 in its manifest; it cannot be restored with a checksum`);
  }
  const decoded = await open(manifest);
  // The upload may report a broken body as a transport failure: the decoder's own error is the truth.
  let decodeError: unknown;
  decoded.on('error', (error) => {
    decodeError ??= error;
  });
  try {
    await port.uploadSnapshot(scratch, decoded, { checksum, priority: 'snapshot' });
  } catch (error) {
    throw decodeError ?? error;
  }
  if (decodeError !== undefined) throw decodeError;
}

async function restoreExportChain(port: QdrantPort, scratch: string, manifest: Manifest, store: ArtifactStore, open: (m: Manifest) => Promise<Readable>): Promise<void> {
  const manifests = new Map<string, Manifest>([[manifest.id, manifest]]);
  const chain = await chainApplyOrder(manifest.id, async (id) => {
    const link = manifests.get(id) ?? (await store.readManifest(manifest.engine, manifest.target, id));
    if (link === undefined) return undefined;
    if (link.format !== EXPORT_FORMAT) {
      throw new TidemarkError('INTEGRITY_FORMAT', `artifact ${id} in the export chain of ${manifest.id} has format ${JSON.stringify(link.format)}, not ${EXPORT_FORMAT}`);
    }
    manifests.set(id, link);
    return { id: link.id, kind: link.kind, parentId: link.parentId };
  });
  await restoreChain(port, {
    collection: scratch,
    overwrite: false,
    links: chain.map((link) => () => open(manifests.get(link.id) as Manifest)),
  });
}
