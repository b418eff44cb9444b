// The Qdrant test double: an HTTP server (node:http) for the subset of Qdrant's REST API that
// Tidemark uses, with real in-memory state and real snapshot files on disk. Envelopes, status
// codes and defaults follow Qdrant 1.19; see README.md for what is covered.
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { ARCHIVE_FORMAT, decodeVector, QDRANT_VERSION, readArchive, streamArchive, writeArchive, type ArchiveHeader } from './archive.js';
import { Collection, configFromCreate, type StoredPoint } from './collection.js';
import { badRequest, collectionNotFound, conflict, notFound, QdrantHttpError, validation } from './errors.js';
import { parsePointId } from './ids.js';
import { multipartBoundary, readMultipartField } from './multipart.js';
import { hashFile, SnapshotFiles, type SnapshotDescription } from './snapshots.js';
import type { AcceptedEnvelope, ErrorEnvelope, OkEnvelope, Schemas } from './types.js';

/** Qdrant's default `service.max_request_size_mb` (32 MiB) for JSON bodies. */
const MAX_JSON_BYTES = 32 * 1024 * 1024;
const PRIORITIES: readonly Schemas['SnapshotPriority'][] = ['no_sync', 'snapshot', 'replica'];

export interface QdrantDoubleOptions {
  /** Where snapshot files live (created if missing, not removed by close()). */
  readonly dataDir: string;
  readonly host?: string;
  /** 0 (the default) picks a free port. */
  readonly port?: number;
}

/** Fault injection, for tests of timeouts, retries and breakers. */
export interface QdrantFaults {
  /** The next `count` requests (whose path starts with `pathPrefix`, if given) fail with `status` and Qdrant's error envelope. */
  failNext(count: number, status?: number, pathPrefix?: string): void;
  /** Requests whose path starts with `pathPrefix` get no answer until hang(null) (then they are served). */
  hang(pathPrefix: string | null): void;
  /** Delays every answer by `ms` (0 turns it off). */
  delayMs(ms: number): void;
  /** Clears every fault and serves hung requests. */
  reset(): void;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  status?: number;
}

export interface QdrantDouble {
  readonly url: string;
  readonly port: number;
  /** The snapshots directory; `file://` recover locations must point inside it, as in Qdrant. */
  readonly snapshotsDir: string;
  readonly faults: QdrantFaults;
  /** Every request received, in order (method, path without query, answered status). */
  readonly requests: readonly RequestRecord[];
  close(): Promise<void>;
}

type Reply =
  | { readonly kind: 'ok'; readonly result: unknown }
  | { readonly kind: 'accepted' }
  | { readonly kind: 'text'; readonly body: string }
  /** A bare JSON body without the envelope (`GET /` answers VersionInfo as is). */
  | { readonly kind: 'json'; readonly body: unknown }
  | { readonly kind: 'done' };

interface Context {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
}

type Handler = (ctx: Context) => Promise<Reply>;
interface Route {
  readonly method: string;
  readonly pattern: readonly string[];
  readonly handler: Handler;
}

const ok = (result: unknown): Reply => ({ kind: 'ok', result });
const ACCEPTED: Reply = { kind: 'accepted' };

/** Starts the double and resolves once it listens. */
export async function startQdrantDouble(options: QdrantDoubleOptions): Promise<QdrantDouble> {
  const snapshotsDir = resolve(options.dataDir, 'snapshots');
  await mkdir(snapshotsDir, { recursive: true });
  const state = new DoubleState(new SnapshotFiles(snapshotsDir));
  const requests: RequestRecord[] = [];
  const faults = new FaultState();
  const routes = state.routes();

  const server: Server = createServer({ requestTimeout: 0 }, (req, res) => {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://qdrant');
    const record: RequestRecord = { method: req.method ?? 'GET', path: url.pathname };
    requests.push(record);
    res.once('finish', () => (record.status = res.statusCode));
    void serve(req, res, url, started).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, started, error);
      else res.destroy(error instanceof Error ? error : undefined);
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse, url: URL, started: bigint): Promise<void> {
    await faults.apply(url.pathname);
    const injected = faults.takeFailure(url.pathname);
    if (injected !== undefined) {
      sendError(res, started, new QdrantHttpError(injected, `Service internal error: injected fault (tidemark qdrant test double, status ${injected})`));
      return;
    }
    const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    let methodMismatch = false;
    for (const route of routes) {
      const params = match(route.pattern, segments);
      if (params === undefined) continue;
      if (route.method !== req.method) {
        methodMismatch = true;
        continue;
      }
      const reply = await route.handler({ req, res, params, query: url.searchParams });
      send(res, started, reply);
      return;
    }
    res.writeHead(methodMismatch ? 405 : 404, { 'content-type': 'text/plain' });
    res.end(`${req.method} ${url.pathname} is not supported by the tidemark qdrant test double`);
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    port,
    snapshotsDir,
    faults,
    requests,
    close: () =>
      (closed ??= (async () => {
        faults.reset();
        const done = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        await done;
        await state.settle();
      })()),
  };
}

function match(pattern: readonly string[], segments: readonly string[]): string[] | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    const s = segments[i] as string;
    if (p.startsWith(':')) params.push(s);
    else if (p !== s) return undefined;
  }
  return params;
}

const elapsed = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;

function send(res: ServerResponse, started: bigint, reply: Reply): void {
  if (reply.kind === 'done') return;
  if (reply.kind === 'json') {
    writeJson(res, 200, reply.body);
    return;
  }
  if (reply.kind === 'text') {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(reply.body);
    return;
  }
  const body: OkEnvelope<unknown> | AcceptedEnvelope =
    reply.kind === 'ok' ? { result: reply.result, status: 'ok', time: elapsed(started) } : { status: 'accepted', time: elapsed(started) };
  writeJson(res, reply.kind === 'ok' ? 200 : 202, body);
}

function sendError(res: ServerResponse, started: bigint, error: unknown): void {
  const status = error instanceof QdrantHttpError ? error.status : 500;
  const message = error instanceof QdrantHttpError ? error.message : `Service internal error: ${error instanceof Error ? error.message : String(error)}`;
  const body: ErrorEnvelope = { status: { error: message }, time: elapsed(started) };
  writeJson(res, status, body);
}

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a JSON body as actix does for Qdrant: a JSON content type, at most 32 MiB, valid JSON. */
async function readJson<T>(req: IncomingMessage): Promise<T> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().includes('json')) throw badRequest('Content type error');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_JSON_BYTES) throw new QdrantHttpError(413, `JSON payload (${declared} bytes) is larger than allowed (limit: ${MAX_JSON_BYTES} bytes).`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BYTES) throw new QdrantHttpError(413, `JSON payload (${size} bytes) is larger than allowed (limit: ${MAX_JSON_BYTES} bytes).`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw badRequest(`Json deserialize error: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function boolParam(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const value = query.get(name);
  if (value === null) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw badRequest(`Query deserialize error: invalid value \`${value}\` for \`${name}\`: expected true or false`);
}

function priority(value: unknown): Schemas['SnapshotPriority'] {
  if (value === null || value === undefined) return 'replica';
  if (!PRIORITIES.includes(value as Schemas['SnapshotPriority'])) {
    throw badRequest(`Query deserialize error: unknown variant \`${String(value)}\`, expected one of \`no_sync\`, \`snapshot\`, \`replica\``);
  }
  return value as Schemas['SnapshotPriority'];
}

/** A URL fit for an error message: no query string (a presigned URL's signature is a secret). */
const redact = (location: string) => location.replace(/[?#].*$/, '');

class FaultState implements QdrantFaults {
  private failures = 0;
  private failStatus = 503;
  private failPrefix = '';
  private hangPrefix: string | null = null;
  private delay = 0;
  private hung: (() => void)[] = [];

  failNext(count: number, status = 503, pathPrefix = ''): void {
    if (!Number.isInteger(count) || count < 0) throw new Error(`failNext needs a count of 0 or more, got ${count}`);
    if (!Number.isInteger(status) || status < 400 || status > 599) throw new Error(`failNext needs an error status (400-599), got ${status}`);
    this.failures = count;
    this.failStatus = status;
    this.failPrefix = pathPrefix;
  }

  hang(pathPrefix: string | null): void {
    this.hangPrefix = pathPrefix;
    if (pathPrefix === null) this.release();
  }

  delayMs(ms: number): void {
    if (!(ms >= 0)) throw new Error(`delayMs needs 0 or more, got ${ms}`);
    this.delay = ms;
  }

  reset(): void {
    this.failures = 0;
    this.delay = 0;
    this.hangPrefix = null;
    this.release();
  }

  private release(): void {
    const hung = this.hung;
    this.hung = [];
    for (const resume of hung) resume();
  }

  async apply(path: string): Promise<void> {
    if (this.delay > 0) await new Promise((r) => setTimeout(r, this.delay));
    if (this.hangPrefix !== null && path.startsWith(this.hangPrefix)) await new Promise<void>((r) => this.hung.push(r));
  }

  takeFailure(path: string): number | undefined {
    if (this.failures > 0 && path.startsWith(this.failPrefix)) {
      this.failures--;
      return this.failStatus;
    }
    return undefined;
  }
}

class DoubleState {
  private readonly collections = new Map<string, Collection>();
  private readonly aliases = new Map<string, string>();
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly files: SnapshotFiles) {}

  /** Waits for background work (wait=false operations). */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Runs `work` now (wait=true) or in the background (wait=false, answered 202). */
  private async maybeWait(wait: boolean, work: () => Promise<unknown>): Promise<Reply> {
    if (wait) return ok(await work());
    const task = new Promise((r) => setImmediate(r)).then(work);
    this.background.add(task);
    void task.catch(() => undefined).finally(() => this.background.delete(task));
    return ACCEPTED;
  }

  /** The collection's real name, following an alias. */
  private resolveName(name: string): string {
    return this.collections.has(name) ? name : (this.aliases.get(name) ?? name);
  }

  private get(name: string): { name: string; collection: Collection } {
    const real = this.resolveName(name);
    const collection = this.collections.get(real);
    if (!collection) throw collectionNotFound(name);
    return { name: real, collection };
  }

  private shard(collection: Collection, raw: string): number {
    const shard = Number(raw);
    if (!/^\d+$/.test(raw) || shard >= collection.shardNumber) throw notFound(`Shard ${raw} does not exist`);
    return shard;
  }

  routes(): Route[] {
    const r = (method: string, path: string, handler: Handler): Route => ({ method, pattern: path.split('/').filter((s) => s !== ''), handler });
    return [
      r('GET', '/', async () => ({ kind: 'json', body: { title: 'qdrant - vector search engine', version: QDRANT_VERSION, commit: null } satisfies Schemas['VersionInfo'] })),
      r('GET', '/healthz', async () => ({ kind: 'text', body: 'healthz check passed' })),
      r('GET', '/livez', async () => ({ kind: 'text', body: 'healthz check passed' })),
      r('GET', '/readyz', async () => ({ kind: 'text', body: 'all shards are ready' })),
      r('GET', '/collections', async () => ok({ collections: [...this.collections.keys()].sort().map((name) => ({ name })) } satisfies Schemas['CollectionsResponse'])),
      r('GET', '/aliases', async () => ok(this.aliasList())),
      r('POST', '/collections/aliases', async ({ req }) => ok(this.updateAliases(await readJson<Schemas['ChangeAliasesOperation']>(req)))),
      r('GET', '/collections/:c', async ({ params }) => ok(this.get(params[0] as string).collection.info())),
      r('PUT', '/collections/:c', async ({ req, params }) => ok(this.create(params[0] as string, await readJson<Schemas['CreateCollection']>(req)))),
      r('DELETE', '/collections/:c', async ({ params }) => ok(await this.deleteCollection(params[0] as string))),
      r('GET', '/collections/:c/exists', async ({ params }) =>
        ok({ exists: this.collections.has(this.resolveName(params[0] as string)) } satisfies Schemas['CollectionExistence']),
      ),
      r('GET', '/collections/:c/aliases', async ({ params }) => {
        const { name } = this.get(params[0] as string);
        return ok({ aliases: this.aliasList().aliases.filter((a) => a.collection_name === name) } satisfies Schemas['CollectionsAliasesResponse']);
      }),
      // Points.
      r('PUT', '/collections/:c/points', async ({ req, params, query }) => this.update(params, query, async (c) => c.upsert(await readJson<Schemas['PointInsertOperations']>(req)))),
      r('POST', '/collections/:c/points/delete', async ({ req, params, query }) => this.update(params, query, async (c) => c.delete(await readJson<Schemas['PointsSelector']>(req)))),
      r('POST', '/collections/:c/points', async ({ req, params }) => {
        const { collection } = this.get(params[0] as string);
        return ok(collection.retrieve(await readJson<Schemas['PointRequest']>(req)) satisfies Schemas['Record'][]);
      }),
      r('GET', '/collections/:c/points/:id', async ({ params }) => {
        const { collection } = this.get(params[0] as string);
        const raw = params[1] as string;
        const id = parsePointId(/^\d+$/.test(raw) ? Number(raw) : raw);
        const [found] = collection.retrieve({ ids: [id], with_payload: true, with_vector: true });
        if (!found) throw notFound(`No point with id ${raw} found`);
        return ok(found);
      }),
      r('POST', '/collections/:c/points/scroll', async ({ req, params }) => {
        const { collection } = this.get(params[0] as string);
        return ok(collection.scroll(await readJson<Schemas['ScrollRequest']>(req)) satisfies Schemas['ScrollResult']);
      }),
      r('POST', '/collections/:c/points/count', async ({ req, params }) => {
        const { collection } = this.get(params[0] as string);
        return ok(collection.count(await readJson<Schemas['CountRequest']>(req)) satisfies Schemas['CountResult']);
      }),
      r('POST', '/collections/:c/points/query', async ({ req, params }) => {
        const { collection } = this.get(params[0] as string);
        return ok(collection.query(await readJson<Schemas['QueryRequest']>(req)) satisfies Schemas['QueryResponse']);
      }),
      // Collection snapshots.
      r('POST', '/collections/:c/snapshots', async ({ params, query }) => {
        const { name, collection } = this.get(params[0] as string);
        return this.maybeWait(boolParam(query, 'wait', true), () => this.createSnapshot(name, collection));
      }),
      r('GET', '/collections/:c/snapshots', async ({ params }) => ok(await this.files.list(this.get(params[0] as string).name))),
      r('POST', '/collections/:c/snapshots/upload', async ({ req, params, query }) => this.recoverUpload(req, params[0] as string, undefined, query)),
      r('PUT', '/collections/:c/snapshots/recover', async ({ req, params, query }) =>
        this.recoverLocation(params[0] as string, undefined, await readJson<Schemas['SnapshotRecover']>(req), query),
      ),
      r('GET', '/collections/:c/snapshots/:s', async ({ res, params }) =>
        this.download(res, await this.files.path(this.get(params[0] as string).name, params[1] as string)),
      ),
      r('DELETE', '/collections/:c/snapshots/:s', async ({ params, query }) => {
        const { name } = this.get(params[0] as string);
        return this.maybeWait(boolParam(query, 'wait', true), async () => (await this.files.delete(name, params[1] as string), true));
      }),
      // Shard snapshots.
      r('POST', '/collections/:c/shards/:shard/snapshots', async ({ params, query }) => {
        const { name, collection } = this.get(params[0] as string);
        const shard = this.shard(collection, params[1] as string);
        return this.maybeWait(boolParam(query, 'wait', true), () => this.createSnapshot(name, collection, shard));
      }),
      r('GET', '/collections/:c/shards/:shard/snapshots', async ({ params }) => {
        const { name, collection } = this.get(params[0] as string);
        return ok(await this.files.list(name, this.shard(collection, params[1] as string)));
      }),
      r('GET', '/collections/:c/shards/:shard/snapshot', async ({ res, params }) => {
        const { name, collection } = this.get(params[0] as string);
        const shard = this.shard(collection, params[1] as string);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        await streamArchive(this.header(name, collection, shard), collection.shardPoints(shard), res);
        return { kind: 'done' };
      }),
      r('POST', '/collections/:c/shards/:shard/snapshots/upload', async ({ req, params, query }) => {
        const { collection } = this.get(params[0] as string);
        return this.recoverUpload(req, params[0] as string, this.shard(collection, params[1] as string), query);
      }),
      r('PUT', '/collections/:c/shards/:shard/snapshots/recover', async ({ req, params, query }) => {
        const { collection } = this.get(params[0] as string);
        const shard = this.shard(collection, params[1] as string);
        return this.recoverLocation(params[0] as string, shard, await readJson<Schemas['ShardSnapshotRecover']>(req), query);
      }),
      r('GET', '/collections/:c/shards/:shard/snapshots/:s', async ({ res, params }) => {
        const { name, collection } = this.get(params[0] as string);
        return this.download(res, await this.files.path(name, params[2] as string, this.shard(collection, params[1] as string)));
      }),
      r('DELETE', '/collections/:c/shards/:shard/snapshots/:s', async ({ params, query }) => {
        const { name, collection } = this.get(params[0] as string);
        const shard = this.shard(collection, params[1] as string);
        return this.maybeWait(boolParam(query, 'wait', true), async () => (await this.files.delete(name, params[2] as string, shard), true));
      }),
    ];
  }

  // --- collections and aliases ---------------------------------------------------------------

  private create(name: string, body: Schemas['CreateCollection']): boolean {
    if (name.length === 0 || name.length > 255) throw validation(`collection_name: length must be between 1 and 255`);
    if (this.collections.has(name)) throw conflict(`Collection \`${name}\` already exists!`);
    if (this.aliases.has(name)) throw conflict(`Alias with name \`${name}\` already exists!`);
    if (body === null || typeof body !== 'object') throw badRequest('Json deserialize error: expected a JSON object');
    this.collections.set(name, new Collection(configFromCreate(body)));
    return true;
  }

  private async deleteCollection(name: string): Promise<boolean> {
    if (!this.collections.delete(name)) return false;
    for (const [alias, target] of this.aliases) if (target === name) this.aliases.delete(alias);
    // Like Qdrant, a deleted collection's snapshot files stay on disk: they may be its backup
    // (qdrant#5558); `file://` recovery still finds them.
    return true;
  }

  private aliasList(): Schemas['CollectionsAliasesResponse'] {
    return {
      aliases: [...this.aliases.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([alias_name, collection_name]) => ({ alias_name, collection_name })),
    };
  }

  /** Applies every action or none (validated against a copy first). */
  private updateAliases(body: Schemas['ChangeAliasesOperation']): boolean {
    if (!body || !Array.isArray(body.actions)) throw badRequest('Json deserialize error: missing field `actions`');
    const next = new Map(this.aliases);
    for (const action of body.actions) {
      if ('create_alias' in action) {
        const { collection_name, alias_name } = action.create_alias;
        if (!this.collections.has(collection_name)) throw collectionNotFound(collection_name);
        if (this.collections.has(alias_name)) throw conflict(`Collection \`${alias_name}\` already exists!`);
        next.set(alias_name, collection_name);
      } else if ('delete_alias' in action) {
        const { alias_name } = action.delete_alias;
        if (!next.delete(alias_name)) throw notFound(`Alias ${alias_name} does not exists!`);
      } else if ('rename_alias' in action) {
        const { old_alias_name, new_alias_name } = action.rename_alias;
        const target = next.get(old_alias_name);
        if (target === undefined) throw notFound(`Alias ${old_alias_name} does not exists!`);
        next.delete(old_alias_name);
        next.set(new_alias_name, target);
      } else {
        throw badRequest(`Json deserialize error: unknown alias action ${JSON.stringify(action).slice(0, 100)}`);
      }
    }
    this.aliases.clear();
    for (const [alias, target] of next) this.aliases.set(alias, target);
    return true;
  }

  private async update(params: readonly string[], query: URLSearchParams, apply: (c: Collection) => Promise<Schemas['UpdateResult']>): Promise<Reply> {
    const { collection } = this.get(params[0] as string);
    const wait = boolParam(query, 'wait', false);
    const result = await apply(collection);
    // The double applies every update before answering; without wait Qdrant only acknowledges it.
    return ok({ ...result, status: wait ? 'completed' : 'acknowledged' } satisfies Schemas['UpdateResult']);
  }

  // --- snapshots -------------------------------------------------------------------------------

  private header(name: string, collection: Collection, shard?: number): ArchiveHeader {
    return {
      format: ARCHIVE_FORMAT,
      format_version: 1,
      qdrant_version: QDRANT_VERSION,
      kind: shard === undefined ? 'collection' : 'shard',
      collection: name,
      ...(shard === undefined ? {} : { shard_id: shard }),
      created_at: new Date().toISOString(),
      config: collection.config,
    };
  }

  private async createSnapshot(name: string, collection: Collection, shard?: number): Promise<SnapshotDescription> {
    // The points are taken now (immutable records), so later writes don't reach the snapshot.
    const points = shard === undefined ? collection.allPoints() : collection.shardPoints(shard);
    const header = this.header(name, collection, shard);
    const snapshot = await this.files.newName(name, shard);
    const path = join(this.files.dir(name, shard), snapshot);
    const { size, checksum } = await writeArchive(path, header, points);
    await this.files.saveChecksum(name, snapshot, checksum, shard);
    const info = await stat(path);
    return { name: snapshot, creation_time: info.mtime.toISOString().slice(0, 19), size, checksum };
  }

  private async download(res: ServerResponse, path: string): Promise<Reply> {
    const { size } = await stat(path);
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': size,
      'content-disposition': `attachment; filename="${path.slice(path.lastIndexOf(sep) + 1)}"`,
    });
    await pipeline(createReadStream(path), res);
    return { kind: 'done' };
  }

  private async recoverUpload(req: IncomingMessage, name: string, shard: number | undefined, query: URLSearchParams): Promise<Reply> {
    const wait = boolParam(query, 'wait', true);
    const chosen = priority(query.get('priority'));
    const boundary = multipartBoundary(req.headers['content-type']);
    const incoming = await this.files.ingest((out) => readMultipartField(req as AsyncIterable<Buffer>, boundary, 'snapshot', out), query.get('checksum'));
    return this.maybeWait(wait, () => this.recoverFile(name, shard, incoming.path, chosen).finally(() => rm(incoming.path, { force: true })));
  }

  private async recoverLocation(
    name: string,
    shard: number | undefined,
    body: Schemas['SnapshotRecover'] | Schemas['ShardSnapshotRecover'],
    query: URLSearchParams,
  ): Promise<Reply> {
    const wait = boolParam(query, 'wait', true);
    if (!body || typeof body.location !== 'string') throw badRequest('Json deserialize error: missing field `location`');
    const chosen = priority(body.priority);
    const location = body.location;
    let url: URL;
    try {
      url = new URL(location);
    } catch {
      throw badRequest(`Invalid snapshot location: ${redact(location)}`);
    }
    if (url.protocol === 'file:') {
      const path = resolve(fileURLToPath(url));
      if (!path.startsWith(this.files.root + sep)) throw badRequest(`Snapshot file ${path} must be inside the snapshots directory ${this.files.root}`);
      try {
        await stat(path);
      } catch {
        throw notFound(`Snapshot file ${path} does not exist`);
      }
      if (body.checksum) {
        const actual = await hashFile(path);
        if (actual !== body.checksum.toLowerCase()) throw badRequest(`Snapshot checksum mismatch: expected ${body.checksum}, got ${actual}`);
      }
      return this.maybeWait(wait, () => this.recoverFile(name, shard, path, chosen));
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest(`Unsupported snapshot location scheme: ${url.protocol}`);
    const work = async () => {
      let response: Response;
      try {
        response = await fetch(url, { headers: body.api_key ? { 'api-key': body.api_key } : {} });
      } catch (error) {
        throw badRequest(`Failed to download snapshot from ${redact(location)}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (!response.ok || response.body === null) {
        await response.body?.cancel();
        throw badRequest(`Failed to download snapshot from ${redact(location)}: status ${response.status}`);
      }
      const incoming = await this.files.ingest(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), body.checksum);
      try {
        return await this.recoverFile(name, shard, incoming.path, chosen);
      } finally {
        await rm(incoming.path, { force: true });
      }
    };
    return this.maybeWait(wait, work);
  }

  /**
   * Recovers a collection (created or replaced) or one shard from a snapshot file. On a single
   * node every priority applies the snapshot's data; the priority is validated and recorded only.
   */
  private async recoverFile(name: string, shard: number | undefined, path: string, _priority: Schemas['SnapshotPriority']): Promise<boolean> {
    let target: Collection | undefined;
    const points: StoredPoint[] = [];
    await readArchive(path, (header) => {
      if (shard === undefined) {
        if (header.kind !== 'collection') throw badRequest('Snapshot is not valid: this is a shard snapshot; recover it through the shard snapshot endpoints');
        target = new Collection(header.config);
      } else {
        if (header.kind !== 'shard') throw badRequest('Snapshot is not valid: this is a collection snapshot; recover it through the collection snapshot endpoints');
        target = this.get(name).collection;
        if (JSON.stringify(header.config.params.vectors) !== JSON.stringify(target.config.params.vectors)) {
          throw badRequest("Snapshot is not valid: its vectors config differs from the collection's");
        }
      }
      const collection = target;
      return (p) => {
        const vectors = Object.fromEntries(Object.entries(p.vectors).map(([name, v]) => [name, decodeVector(v)]));
        points.push(collection.makePoint(p.id, vectors, p.payload, p.version, true));
      };
    });
    if (target === undefined) throw badRequest('Snapshot is not valid: no header');
    if (shard !== undefined) {
      target.replaceShard(shard, points);
      return true;
    }
    if (this.aliases.has(name)) throw conflict(`Alias with name \`${name}\` already exists!`);
    target.load(points);
    this.collections.set(name, target);
    return true;
  }
}
