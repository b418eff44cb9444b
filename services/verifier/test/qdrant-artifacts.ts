// Builds committed Qdrant artifacts for the verifier's tests straight from @tidemark/qdrant's
// building blocks (snapshotCollection / exportCollection / exportDelta) through the real pipeline
// into an ArtifactStore, without the qdrant-agent's handlers.
import type { Readable } from 'node:stream';
import type { Manifest, QdrantSourceFacts } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import { decodeStream, encodeStream, type KeyRing } from '@tidemark/pipeline';
import {
  EXPORT_COVERAGE, EXPORT_FORMAT, SINGLE_NODE_COVERAGE, SNAPSHOT_FORMAT, collectFacts, exportCollection, exportDelta, readIdSet, snapshotCollection,
  type QdrantPort,
} from '@tidemark/qdrant';

export const INCREMENTAL_FIELD = 'updatedAt';

interface ArtifactOptions {
  readonly collection: string;
  readonly target: string;
  readonly id: string;
}

async function save(store: ArtifactStore, keys: KeyRing, target: string, id: string, bytes: Readable) {
  const encoded = encodeStream(bytes, { compression: 'gzip', key: keys.current! });
  const [saved, summary] = await Promise.all([store.saveData('qdrant', target, id, encoded.output), encoded.summary]);
  return { saved, summary };
}

async function commit(store: ArtifactStore, options: ArtifactOptions, fields: Pick<Manifest, 'kind' | 'format'> & { parentId?: string }, source: QdrantSourceFacts, stored: Awaited<ReturnType<typeof save>>): Promise<Manifest> {
  const manifest: Manifest = {
    manifestVersion: 1, id: options.id, engine: 'qdrant', target: options.target, ...fields,
    requestId: `r-${options.id}`, createdAt: '2025-01-01T00:00:00Z', finishedAt: '2025-01-01T00:00:01Z', agent: { id: 'test', version: '0' },
    source: source as unknown as Record<string, unknown>, pipeline: stored.summary.pipeline,
    data: { key: stored.saved.key, storedBytes: stored.summary.storedBytes, rawBytes: stored.summary.rawBytes, sha256: stored.summary.sha256 },
    verify: true,
  };
  await store.commit(manifest);
  return manifest;
}

/** A collection snapshot, stored gzip + encrypted, with its facts and Qdrant's checksum in the manifest. */
export async function storeSnapshotArtifact(port: QdrantPort, store: ArtifactStore, keys: KeyRing, options: ArtifactOptions): Promise<Manifest> {
  const facts = await collectFacts(port, options.collection, SINGLE_NODE_COVERAGE, { sampleSize: 32 });
  const outcome = await snapshotCollection(port, { collection: options.collection, store: (bytes) => save(store, keys, options.target, options.id, bytes) });
  const source: QdrantSourceFacts = {
    ...facts,
    snapshot: { name: outcome.snapshot.name, qdrantSha256: outcome.qdrantSha256, sha256: outcome.sha256, bytes: outcome.bytes },
  };
  return commit(store, options, { kind: 'snapshot', format: SNAPSHOT_FORMAT }, source, outcome.stored);
}

/** A full portable export; the manifest records the high-water mark of INCREMENTAL_FIELD. */
export async function storeExportArtifact(port: QdrantPort, store: ArtifactStore, keys: KeyRing, options: ArtifactOptions): Promise<Manifest> {
  const facts = await collectFacts(port, options.collection, EXPORT_COVERAGE, { sampleSize: 32 });
  const { stream, trailer } = exportCollection(port, { collection: options.collection, exportId: options.id, incrementalField: INCREMENTAL_FIELD });
  const stored = await save(store, keys, options.target, options.id, stream);
  const { highWater } = await trailer;
  return commit(store, options, { kind: 'export', format: EXPORT_FORMAT }, { ...facts, includePayload: true, incremental: { field: INCREMENTAL_FIELD, highWater } }, stored);
}

/** An incremental export against `parent` (read back from the store for its id set). */
export async function storeIncrementalArtifact(port: QdrantPort, store: ArtifactStore, keys: KeyRing, parent: Manifest, options: ArtifactOptions): Promise<Manifest> {
  const parentFacts = parent.source as unknown as QdrantSourceFacts;
  const parentHighWater = parentFacts.incremental?.highWater;
  const facts = await collectFacts(port, options.collection, EXPORT_COVERAGE, { sampleSize: 32 });
  const parentBytes = decodeStream(await store.openData(parent), { pipeline: parent.pipeline, sha256: parent.data.sha256, storedBytes: parent.data.storedBytes }, keys);
  const { stream, trailer } = exportDelta(port, {
    collection: options.collection, exportId: options.id, parentExportId: parent.id, parentHighWater, parentIds: readIdSet(parentBytes), incrementalField: INCREMENTAL_FIELD,
  });
  const stored = await save(store, keys, options.target, options.id, stream);
  const { highWater } = await trailer;
  return commit(
    store, options, { kind: 'incremental', format: EXPORT_FORMAT, parentId: parent.id },
    { ...facts, includePayload: true, incremental: { field: INCREMENTAL_FIELD, parentHighWater, highWater } }, stored,
  );
}
