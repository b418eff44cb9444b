// The real QdrantPort: the only file that imports @qdrant/js-client-rest. Snapshot download and
// upload use fetch with streamed bodies, because the client buffers them. Wrap it with guardPort
// (breaker, timeouts, error mapping) before use.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import type { CollectionInfo, PointId, QdrantPort, SnapshotInfo } from './port.js';

export interface QdrantConnection {
  /** e.g. http://qdrant:6333 */
  readonly url: string;
  /** The API key itself (read from the env variable the config names); never logged. */
  readonly apiKey?: string;
  /** Per-request timeout of the client (default 30 s). */
  readonly timeoutMs?: number;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly data: unknown, operation: string) {
    super(`${operation} answered ${status}`);
    this.name = 'HttpError';
  }
}

const snapshotInfo = (s: Schemas['SnapshotDescription']): SnapshotInfo => ({ name: s.name, size: s.size, checksum: s.checksum ?? null });

export function createQdrantPort(connection: QdrantConnection): QdrantPort {
  const client = new QdrantClient({
    url: connection.url,
    ...(connection.apiKey === undefined ? {} : { apiKey: connection.apiKey }),
    timeout: connection.timeoutMs ?? 30_000,
    checkCompatibility: false,
  });
  const base = connection.url.replace(/\/+$/, '');
  const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
    ...(connection.apiKey === undefined ? {} : { 'api-key': connection.apiKey }),
    ...extra,
  });
  const path = (collection: string) => `${base}/collections/${encodeURIComponent(collection)}`;

  async function failIfNotOk(response: Response, operation: string): Promise<void> {
    if (response.ok) return;
    let data: unknown;
    try {
      data = await response.json();
    } catch {
      data = undefined;
    }
    throw new HttpError(response.status, data, operation);
  }

  return {
    async version() {
      return (await client.versionInfo()).version;
    },
    async cluster() {
      let status: Schemas['ClusterStatus'] | undefined;
      try {
        status = (await client.api().clusterStatus({})).data.result as Schemas['ClusterStatus'] | undefined;
      } catch (error) {
        // Qdrant always serves GET /cluster ({status:"disabled"} on a single node); an endpoint
        // that does not (the test double today) cannot be a cluster.
        if ((error as { status?: unknown }).status === 404) return { enabled: false, peers: 1 };
        throw error;
      }
      if (status === undefined || status.status !== 'enabled') return { enabled: false, peers: 1 };
      return { enabled: true, peers: Object.keys(status.peers).length };
    },
    async listCollections() {
      return (await client.getCollections()).collections.map((c) => c.name);
    },
    async collectionExists(name) {
      return (await client.collectionExists(name)).exists;
    },
    async getCollection(name): Promise<CollectionInfo> {
      const info = await client.getCollection(name);
      return {
        status: info.status,
        pointsCount: info.points_count ?? null,
        config: info.config as unknown as Record<string, unknown>,
        payloadSchema: info.payload_schema as unknown as Record<string, unknown>,
      };
    },
    async createCollection(name, body) {
      await client.createCollection(name, body as unknown as Parameters<QdrantClient['createCollection']>[1]);
    },
    async createPayloadIndex(name, field, schema) {
      await client.createPayloadIndex(name, { field_name: field, field_schema: schema as Schemas['PayloadFieldSchema'], wait: true });
    },
    async deleteCollection(name) {
      await client.deleteCollection(name);
    },
    async count(name, filter) {
      return (await client.count(name, { exact: true, ...(filter === undefined ? {} : { filter: filter as Schemas['Filter'] }) })).count;
    },
    async scroll(name, request) {
      const result = await client.scroll(name, {
        limit: request.limit,
        ...(request.offset === undefined || request.offset === null ? {} : { offset: request.offset }),
        with_vector: request.withVector,
        with_payload: request.withPayload,
        ...(request.filter === undefined ? {} : { filter: request.filter as Schemas['Filter'] }),
      });
      return {
        points: result.points.map((p) => ({
          id: p.id,
          ...(p.vector === undefined || p.vector === null ? {} : { vector: p.vector as never }),
          ...(p.payload === undefined || p.payload === null ? {} : { payload: p.payload }),
        })),
        nextOffset: (result.next_page_offset ?? null) as PointId | null,
      };
    },
    async upsert(name, points) {
      await client.upsert(name, { wait: true, points: points.map((p) => ({ id: p.id, vector: (p.vector ?? {}) as never, ...(p.payload === undefined ? {} : { payload: p.payload }) })) });
    },
    async deletePoints(name, ids) {
      await client.delete(name, { wait: true, points: ids });
    },
    async query(name, request) {
      const result = await client.query(name, {
        query: request.vector as never,
        ...(request.using === undefined ? {} : { using: request.using }),
        limit: request.limit,
        with_payload: false,
        with_vector: false,
      });
      return result.points.map((p) => p.id);
    },
    async listAliases() {
      return (await client.getAliases()).aliases.map((a) => ({ alias: a.alias_name, collection: a.collection_name }));
    },
    async updateAliases(actions) {
      await client.updateCollectionAliases({
        actions: actions.map((a) =>
          a.op === 'delete'
            ? { delete_alias: { alias_name: a.alias } }
            : { create_alias: { alias_name: a.alias, collection_name: a.collection ?? '' } },
        ),
      });
    },
    async createSnapshot(name) {
      const snapshot = await client.createSnapshot(name, { wait: true });
      if (snapshot === null) throw new HttpError(500, { status: { error: 'qdrant created no snapshot description' } }, 'create snapshot');
      return snapshotInfo(snapshot);
    },
    async listSnapshots(name) {
      return (await client.listSnapshots(name)).map(snapshotInfo);
    },
    async deleteSnapshot(name, snapshot) {
      await client.deleteSnapshot(name, snapshot, { wait: true });
    },
    async downloadSnapshot(name, snapshot) {
      const response = await fetch(`${path(name)}/snapshots/${encodeURIComponent(snapshot)}`, { headers: headers() });
      await failIfNotOk(response, 'snapshot download');
      if (response.body === null) throw new HttpError(502, undefined, 'snapshot download (empty body)');
      return Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
    },
    async uploadSnapshot(name, body, options) {
      const boundary = `tidemark${randomBytes(12).toString('hex')}`;
      async function* multipart(): AsyncGenerator<Buffer> {
        yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="${name}.snapshot"\r\nContent-Type: application/octet-stream\r\n\r\n`);
        for await (const chunk of body) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      }
      const query = new URLSearchParams({ wait: 'true', priority: options.priority, ...(options.checksum === undefined ? {} : { checksum: options.checksum }) });
      const response = await fetch(`${path(name)}/snapshots/upload?${query.toString()}`, {
        method: 'POST',
        headers: headers({ 'content-type': `multipart/form-data; boundary=${boundary}` }),
        body: Readable.from(multipart()) as unknown as RequestInit['body'],
        duplex: 'half',
      } as RequestInit & { duplex: 'half' });
      await failIfNotOk(response, 'snapshot upload');
      await response.body?.cancel();
    },
  };
}
