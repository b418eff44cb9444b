// The few Qdrant calls the agent needs. Logic codes against this port; the real adapter
// (client-adapter.ts) is the only file that imports @qdrant/js-client-rest, and tests use an
// in-memory fake behind the same interface.
import type { Readable } from 'node:stream';

/** Qdrant point ids: unsigned integers or UUID strings. */
export type PointId = string | number;
export type DenseVector = number[];
export interface SparseVector { indices: number[]; values: number[] }
export type MultiVector = number[][];
export type VectorValue = DenseVector | SparseVector | MultiVector;
/** The unnamed dense vector, or named vectors of any kind. */
export type PointVectors = DenseVector | Record<string, VectorValue>;
export type Payload = Record<string, unknown>;

export interface QdrantPoint {
  id: PointId;
  vector?: PointVectors;
  payload?: Payload;
}

/**
 * A collection's description as Qdrant reports it (`GET /collections/{name}`), kept as plain JSON:
 * `config.params` (vectors, sparse_vectors, shard_number, sharding_method, replication_factor,
 * write_consistency_factor, on_disk_payload), `config.hnsw_config`, `config.optimizer_config`,
 * `config.wal_config`, `config.quantization_config`, and `payload_schema`.
 */
export interface CollectionInfo {
  status: string;
  pointsCount: number | null;
  config: Record<string, unknown>;
  payloadSchema: Record<string, unknown>;
}

export interface ScrollRequest {
  limit: number;
  offset?: PointId | null;
  withVector: boolean;
  /** true, false, or the payload keys to include. */
  withPayload: boolean | string[];
  /** A Qdrant filter object, passed through. */
  filter?: Record<string, unknown>;
}

export interface ScrollPage {
  points: QdrantPoint[];
  nextOffset: PointId | null;
}

export interface SnapshotInfo {
  name: string;
  size: number;
  /** sha256 Qdrant computed, when it gives one (null on some storage backends). */
  checksum: string | null;
}

export interface AliasAction {
  op: 'create' | 'delete';
  alias: string;
  collection?: string;
}

export interface QdrantPort {
  /** Server version from `GET /`. */
  version(): Promise<string>;
  /** Whether the node runs in distributed mode with more than one peer. */
  cluster(): Promise<{ enabled: boolean; peers: number }>;
  /** Names of every collection on the server (aliases not included). */
  listCollections(): Promise<string[]>;
  collectionExists(name: string): Promise<boolean>;
  getCollection(name: string): Promise<CollectionInfo>;
  /** Creates a collection from the body `PUT /collections/{name}` takes. */
  createCollection(name: string, body: Record<string, unknown>): Promise<void>;
  createPayloadIndex(name: string, field: string, schema: unknown): Promise<void>;
  deleteCollection(name: string): Promise<void>;
  /** Exact count. */
  count(name: string, filter?: Record<string, unknown>): Promise<number>;
  /** Points in id order. */
  scroll(name: string, request: ScrollRequest): Promise<ScrollPage>;
  /** Upsert with wait=true. */
  upsert(name: string, points: QdrantPoint[]): Promise<void>;
  /** Delete by id with wait=true. */
  deletePoints(name: string, ids: PointId[]): Promise<void>;
  /** Nearest neighbours of `vector` (on the named vector `using`), ids nearest first. */
  query(name: string, request: { vector: VectorValue; using?: string; limit: number }): Promise<PointId[]>;
  listAliases(): Promise<{ alias: string; collection: string }[]>;
  /** Applies alias actions atomically. */
  updateAliases(actions: AliasAction[]): Promise<void>;
  /** Creates a collection snapshot with wait=true. */
  createSnapshot(name: string): Promise<SnapshotInfo>;
  listSnapshots(name: string): Promise<SnapshotInfo[]>;
  deleteSnapshot(name: string, snapshot: string): Promise<void>;
  /** The snapshot's bytes, streamed (not buffered). */
  downloadSnapshot(name: string, snapshot: string): Promise<Readable>;
  /** Uploads a snapshot stream and recovers `name` from it (priority and checksum always passed). */
  uploadSnapshot(name: string, body: Readable, options: { checksum?: string; priority: 'snapshot' | 'replica' | 'no_sync' }): Promise<void>;
}
