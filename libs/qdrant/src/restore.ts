// Restores an export, or a chain (full export + deltas in apply order), into a collection:
// recreate it from the recorded config, upsert in batches (wait=true), apply deletions, check the
// final count against the last link's id set.
//
// Overwrite and rollback. Restoring over an existing name needs `overwrite` (else
// RESTORE_TARGET_EXISTS). The data always goes into a fresh `<name>_restoring_<ts>` first, and
// the old collection is never touched while that runs: a failed restore deletes only the staging
// collection. Qdrant cannot rename a collection, so taking over the name works by alias:
//   - `name` is an alias: it is re-pointed to the restored collection in one atomic alias update;
//     the old collection stays as it was (`previousKeptAs`). Rollback = `rollbackSwitch`:
//     re-point the alias to the old collection and delete the restored one.
//   - `name` is a collection: an alias cannot shadow a collection, so the restored data stays in
//     the staging collection beside the untouched old one (`promotion: "pending"`). Once the
//     restored copy is verified, `promoteRestored` deletes the old collection and creates the
//     alias `name` → restored. Rollback before promotion = delete the staging collection.
import { TidemarkError } from '@tidemark/contracts';
import { readExport, type ExportHeader } from './export-format.js';
import type { PointId, QdrantPoint, QdrantPort } from './port.js';

export interface RestoreOptions {
  /** The collection (or alias) name to restore to. */
  readonly collection: string;
  readonly overwrite: boolean;
  /** The decoded bytes of each link, in apply order (see chainApplyOrder); opened one at a time. */
  readonly links: readonly (() => Promise<AsyncIterable<Buffer | Uint8Array | string>>)[];
  /** Points per upsert (default 256). */
  readonly batchSize?: number;
  /** "recorded" keeps shard_number/replication_factor; "default" lets the target cluster choose. */
  readonly topology?: 'recorded' | 'default';
  readonly clock?: () => Date;
  /** Called after every batch (the handler's `progress()`). */
  readonly progress?: (points: number) => void;
}

export interface RestoreOutcome {
  /** The collection that holds the restored data. */
  readonly collection: string;
  readonly points: number;
  readonly deleted: number;
  /** Where the old data is kept when overwriting. */
  readonly previousKeptAs?: string;
  /** "switched": the alias now serves the restored data; "pending": see promoteRestored. */
  readonly promotion?: 'switched' | 'pending';
}

const strip = (value: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined));

const asRecord = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/**
 * The `PUT /collections/{name}` body from a recorded config. Only settings every Qdrant version
 * understands are carried (vectors, sparse vectors, HNSW, quantization, on-disk payload, and the
 * shard layout unless `topology` is "default"); optimizer and WAL settings take the target's
 * defaults. Custom sharding is restored as automatic sharding (shard keys are not recreated).
 */
export function createBodyFromConfig(config: Record<string, unknown>, topology: 'recorded' | 'default' = 'recorded'): Record<string, unknown> {
  const params = asRecord(config.params);
  return strip({
    vectors: params.vectors,
    sparse_vectors: params.sparse_vectors,
    on_disk_payload: params.on_disk_payload,
    hnsw_config: config.hnsw_config && strip(asRecord(config.hnsw_config)),
    quantization_config: config.quantization_config,
    ...(topology === 'recorded'
      ? { shard_number: params.shard_number, replication_factor: params.replication_factor, write_consistency_factor: params.write_consistency_factor }
      : {}),
  });
}

export function stagingName(name: string, now: Date): string {
  return `${name}_restoring_${now.toISOString().replace(/[-:.]/g, '').replace('T', '_').replace('Z', '')}`;
}

async function aliasTarget(port: QdrantPort, name: string): Promise<string | undefined> {
  return (await port.listAliases()).find((a) => a.alias === name)?.collection;
}

/** Restores a chain; see the module comment for overwrite and rollback. */
export async function restoreChain(port: QdrantPort, options: RestoreOptions): Promise<RestoreOutcome> {
  const name = options.collection;
  if (options.links.length === 0) throw new TidemarkError('ARTIFACT_NOT_FOUND', 'nothing to restore: the chain is empty');
  const alias = await aliasTarget(port, name);
  const exists = alias !== undefined || (await port.collectionExists(name));
  if (exists && !options.overwrite) {
    throw new TidemarkError('RESTORE_TARGET_EXISTS', `qdrant collection ${name} exists; restore into another name or set overwrite (the old collection is kept until the restored one is verified)`);
  }
  const into = exists ? stagingName(name, (options.clock ?? (() => new Date()))()) : name;
  if (await port.collectionExists(into)) throw new TidemarkError('RESTORE_TARGET_EXISTS', `qdrant collection ${into} exists; remove the leftover or retry later`);

  let created = false;
  try {
    const batchSize = options.batchSize ?? 256;
    let previous: ExportHeader | undefined;
    let points = 0;
    let deleted = 0;
    let expected = 0;
    for (const [index, open] of options.links.entries()) {
      let idSetSize = 0;
      let linkPoints = 0;
      for await (const record of readExport(await open())) {
        if (record.type === 'header') {
          checkLink(record.header, index, previous);
          if (index === 0) {
            await port.createCollection(into, createBodyFromConfig(record.header.config, options.topology));
            created = true;
            for (const [field, schema] of Object.entries(record.header.payloadSchema ?? {})) {
              const type = asRecord(schema).data_type;
              if (typeof type === 'string') await port.createPayloadIndex(into, field, type);
            }
          }
          previous = record.header;
        } else if (record.type === 'points') {
          for (let i = 0; i < record.points.length; i += batchSize) {
            const batch: QdrantPoint[] = record.points.slice(i, i + batchSize);
            await port.upsert(into, batch);
            points += batch.length;
            options.progress?.(points);
          }
          linkPoints += record.points.length;
        } else if (record.type === 'deletes') {
          for (let i = 0; i < record.ids.length; i += batchSize) await port.deletePoints(into, record.ids.slice(i, i + batchSize) as PointId[]);
          deleted += record.ids.length;
        } else if (record.type === 'ids') {
          idSetSize += record.ids.length;
        }
      }
      expected = previous?.kind === 'export' ? linkPoints : idSetSize;
    }
    const count = await port.count(into);
    if (count !== expected) {
      throw new TidemarkError('VERIFY_MISMATCH', `the restored collection ${into} holds ${count} points, the export says ${expected}; it was removed, the old data is untouched`);
    }
    if (!exists) return { collection: into, points, deleted };
    if (alias !== undefined) {
      await port.updateAliases([{ op: 'delete', alias: name }, { op: 'create', alias: name, collection: into }]);
      return { collection: into, points, deleted, previousKeptAs: alias, promotion: 'switched' };
    }
    return { collection: into, points, deleted, previousKeptAs: name, promotion: 'pending' };
  } catch (error) {
    if (created) await port.deleteCollection(into).catch(() => undefined);
    throw error;
  }
}

function checkLink(header: ExportHeader, index: number, previous: ExportHeader | undefined): void {
  if (index === 0 && header.kind !== 'export') {
    throw new TidemarkError('INTEGRITY_FORMAT', `a chain must start with a full export, ${header.exportId} is ${header.kind}`);
  }
  if (index > 0 && (header.kind !== 'incremental' || header.parentExportId !== previous?.exportId)) {
    throw new TidemarkError('INTEGRITY_FORMAT', `export ${header.exportId} does not follow ${previous?.exportId ?? 'nothing'} in the chain; restore the chain in order`);
  }
}

/** After verification, when `name` was a collection: replace it by an alias to the restored one. */
export async function promoteRestored(port: QdrantPort, name: string, restored: string): Promise<void> {
  if (await port.collectionExists(name)) await port.deleteCollection(name);
  await port.updateAliases([{ op: 'create', alias: name, collection: restored }]);
}

/** Undoes a switched alias: serve the old collection again and drop the restored one. */
export async function rollbackSwitch(port: QdrantPort, name: string, previous: string, restored: string): Promise<void> {
  await port.updateAliases([{ op: 'delete', alias: name }, { op: 'create', alias: name, collection: previous }]);
  await port.deleteCollection(restored);
}
