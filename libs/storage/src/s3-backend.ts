import { AsyncLocalStorage } from 'node:async_hooks';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { TidemarkError } from '@tidemark/contracts';
import { formatSeconds, watchForStall } from '@tidemark/pipeline';
import type { ByteRange, ObjectInfo, SaveOptions, StorageBackend } from './backend.js';
import { checkKey, notFound, unavailable } from './errors.js';
import { destroyWithCause, emptyStream, toReadable } from './streams.js';

export interface S3BackendConfig {
  /** Host name ("minio", "s3.amazonaws.com"); a URL ("http://127.0.0.1:9000") is also accepted and sets port and useSSL. */
  readonly endPoint: string;
  readonly port?: number;
  readonly useSSL: boolean;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  readonly region?: string;
  /** Optional key prefix inside the bucket. */
  readonly prefix?: string;
  /** Use path-style URLs (MinIO, s3rver). Default true. */
  readonly pathStyle?: boolean;
  /** Create the bucket when missing. Default true. */
  readonly createBucket?: boolean;
  /**
   * Longest wait for a call that moves no data of ours (stat, a listing page, remove, starting or
   * completing an upload, the first byte of a download). Default 60 s. The `minio` client has none.
   */
  readonly requestTimeoutMs?: number;
  /** A transfer (a part upload, a download) that moves no bytes for this long fails. Default 60 s; it never caps a transfer that moves. */
  readonly stallMs?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_STALL_MS = 60_000;

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB..5 GiB (the last may be smaller), at most 10,000 of them. */
const MIN_PART_SIZE = 8 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
/** Parts per size step when the total is unknown: 1000 × 8 MiB, then 1000 × 16 MiB, … (≈8 TiB in all). */
const PARTS_PER_STEP = 1_000;

/** Errors that retrying cannot fix: wrong credentials, bucket or arguments. */
const PERMANENT_CODES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'NoSuchBucket', 'InvalidBucketName', 'AllAccessDisabled']);
const PERMANENT_NAMES = new Set(['InvalidBucketNameError', 'InvalidObjectNameError', 'InvalidArgumentError', 'InvalidEndpointError', 'InvalidPortError']);

function mapError(error: unknown, what: string, key?: string): TidemarkError {
  if (error instanceof TidemarkError) return error;
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  if (key !== undefined && (code === 'NoSuchKey' || code === 'NotFound')) return notFound(key, error);
  const permanent = (typeof code === 'string' && PERMANENT_CODES.has(code)) || (typeof name === 'string' && PERMANENT_NAMES.has(name));
  return unavailable(what, error, !permanent);
}

/**
 * Size of part number `index` (0-based). With a known size the parts are equal and as small as the
 * 10,000-part limit allows; with an unknown size they grow step by step, so small uploads buffer
 * little and huge ones still fit. The client buffers one part, so this bounds memory.
 */
export function partSizeFor(index: number, totalSize: number | undefined): number {
  if (totalSize !== undefined) return Math.min(MAX_PART_SIZE, Math.max(MIN_PART_SIZE, Math.ceil(totalSize / MAX_PARTS / MiB) * MiB));
  return Math.min(MAX_PART_SIZE, MIN_PART_SIZE * 2 ** Math.floor(index / PARTS_PER_STEP));
}

/** S3 through the `minio` client (MinIO or any S3). */
export async function createS3Backend(config: S3BackendConfig): Promise<StorageBackend> {
  const endpoint = parseEndpoint(config);
  const agent = endpoint.useSSL ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const region = config.region ?? 'us-east-1';
  const calls = boundedCalls(endpoint.useSSL ? https : http, config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, config.stallMs ?? DEFAULT_STALL_MS);
  const client = new Client({
    endPoint: endpoint.host,
    ...(endpoint.port === undefined ? {} : { port: endpoint.port }),
    useSSL: endpoint.useSSL,
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    // A fixed region spares a GetBucketLocation round trip before the first call.
    region,
    pathStyle: config.pathStyle ?? true,
    transportAgent: agent,
    transport: calls.transport,
  });
  const { answer, transfer, stallMs } = calls;
  const bucket = config.bucket;
  const keyPrefix = normalizePrefix(config.prefix);
  const location = `s3://${bucket}/${keyPrefix}`;
  const fullKey = (key: string): string => {
    checkKey(key);
    return `${keyPrefix}${key}`;
  };

  try {
    const opening = `opening bucket ${JSON.stringify(bucket)} at ${endpoint.host}`;
    if (!(await answer(opening, () => client.bucketExists(bucket)))) {
      if (config.createBucket === false) {
        throw new TidemarkError('STORAGE_UNAVAILABLE', `bucket ${JSON.stringify(bucket)} does not exist; create it or set createBucket`, { retryable: false });
      }
      await answer(opening, () => client.makeBucket(bucket, region)).catch((error: unknown) => {
        const code = (error as { code?: unknown }).code;
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw error;
      });
    }
  } catch (error) {
    agent.destroy();
    throw mapError(error, `opening bucket ${JSON.stringify(bucket)} at ${endpoint.host}`);
  }

  /**
   * Multipart uploads (id → object name) a failed save could not abort: the server was down or hung
   * right then. Each is aborted again after a later save succeeds, when the server answers again,
   * so an outage leaves no parts behind. (If this process dies first, bucket lifecycle rules expire them.)
   */
  const unaborted = new Map<string, string>();
  /**
   * Object names whose multipart upload a failed save asked for without learning its id: a hung
   * server carries the request out once it resumes. Their uploads are looked up (by the exact name,
   * which no other save uses: data keys carry a fresh token per attempt) and aborted like the above.
   */
  const unknownUploads = new Set<string>();
  async function abortUnaborted(): Promise<void> {
    for (const objectName of unknownUploads) {
      const found = await answer(`listing the uploads of ${JSON.stringify(objectName)}`, () => client.listIncompleteUploadsQuery(bucket, objectName, '', '', '')).catch(() => undefined);
      if (found === undefined) return; // not answering again: the next successful save tries again
      // String(): the client's XML parser turns an all-digit id into a number.
      for (const upload of found.uploads) if (String(upload.key) === objectName) unaborted.set(String(upload.uploadId), objectName);
      unknownUploads.delete(objectName);
    }
    for (const [uploadId, objectName] of unaborted) {
      const aborted = await answer(`aborting the upload of ${JSON.stringify(objectName)}`, () =>
        client.abortMultipartUpload(bucket, objectName, uploadId).catch((error: unknown) => {
          // Gone already: the server carried out an abort that had timed out here.
          if ((error as { code?: unknown }).code !== 'NoSuchUpload') throw error;
        }),
      ).then(
        () => true,
        () => false,
      );
      if (!aborted) return; // not answering again: the next successful save tries again
      unaborted.delete(uploadId);
    }
  }

  async function save(key: string, body: Readable | Uint8Array, options: SaveOptions = {}): Promise<number> {
    const saved = await saveObject(key, body, options);
    if (unaborted.size > 0 || unknownUploads.size > 0) await abortUnaborted();
    return saved;
  }

  async function saveObject(key: string, body: Readable | Uint8Array, options: SaveOptions): Promise<number> {
    const objectName = fullKey(key);
    const headers: Record<string, string> = { 'Content-Type': options.contentType ?? 'application/octet-stream' };
    const what = `saving ${JSON.stringify(key)} to ${location}`;
    if (body instanceof Uint8Array) {
      const buffer = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      await transfer(what, () => client.putObject(bucket, objectName, buffer, buffer.length, headers));
      return buffer.length;
    }
    // Parts are cut here rather than by client.putObject: it sizes parts for a 5 TiB object when the
    // size is unknown (a ~550 MiB buffer), resumes uploads it finds by name, and never aborts.
    const source = toReadable(body);
    let uploadId: string | undefined;
    const etags: { part: number; etag: string }[] = [];
    let total = 0;
    try {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flushPart = async (part: Buffer): Promise<void> => {
        uploadId ??= await answer(what, () => client.initiateNewMultipartUpload(bucket, objectName, headers)).catch((error: unknown) => {
          unknownUploads.add(objectName);
          throw error;
        });
        const upload = uploadId;
        const partNumber = etags.length + 1;
        const { etag } = await transfer(what, () => client.uploadPart({ bucketName: bucket, objectName, uploadID: upload, partNumber, headers: {} }, part));
        etags.push({ part: partNumber, etag });
      };
      // Not destroyed on the way out: on failure the body is destroyed below with the failure
      // itself, so whoever produces it learns the cause rather than a bare abort.
      for await (const chunk of source.iterator({ destroyOnReturn: false })) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
        pending.push(bytes);
        pendingBytes += bytes.length;
        total += bytes.length;
        let partSize = partSizeFor(etags.length, options.size);
        // Send a part only once more bytes follow it: the last part, whatever its size, is sent
        // after the body ends (a body smaller than a part becomes one plain PUT).
        while (pendingBytes > partSize) {
          const joined = Buffer.concat(pending, pendingBytes);
          await flushPart(joined.subarray(0, partSize));
          pending = [joined.subarray(partSize)];
          pendingBytes -= partSize;
          partSize = partSizeFor(etags.length, options.size);
        }
      }
      const last = Buffer.concat(pending, pendingBytes);
      pending = [];
      if (uploadId === undefined) {
        await transfer(what, () => client.putObject(bucket, objectName, last, last.length, headers));
        return total;
      }
      await flushPart(last);
      const upload = uploadId;
      // Only now does the object become visible, whole.
      await answer(what, () => client.completeMultipartUpload(bucket, objectName, upload, etags));
      return total;
    } catch (error) {
      destroyWithCause(source, error);
      if (uploadId !== undefined) {
        // Best effort, bounded by the request timeout (the server may be the very thing that
        // hangs). An upload left behind is invisible, and bucket lifecycle rules expire it.
        const abandoned = uploadId;
        await answer(`aborting the upload of ${JSON.stringify(key)}`, () => client.abortMultipartUpload(bucket, objectName, abandoned)).catch(() => unaborted.set(abandoned, objectName));
      }
      throw error;
    }
  }

  async function open(key: string, range?: ByteRange): Promise<Readable> {
    const objectName = fullKey(key);
    const what = `reading ${JSON.stringify(key)} from ${location}`;
    if (range?.length === 0) {
      await answer(what, () => client.statObject(bucket, objectName), key);
      return emptyStream();
    }
    const offset = range?.offset ?? 0;
    // getPartialObject treats offset 0 and length 0 as "the whole object".
    const response = await answer(what, () => client.getPartialObject(bucket, objectName, offset, range?.length ?? 0), key);
    return watchForStall(response, { stallMs, stalled: (ms) => stalled(what, ms) });
  }

  async function stat(key: string): Promise<ObjectInfo> {
    const info = await answer(`reading the size of ${JSON.stringify(key)} in ${location}`, () => client.statObject(bucket, fullKey(key)), key);
    return { key, size: info.size, modifiedAt: info.lastModified };
  }

  async function* list(prefix: string): AsyncIterable<ObjectInfo> {
    const what = `listing ${JSON.stringify(prefix)} in ${location}`;
    // Page by page, so each page is one bounded call (the client's listing stream has no timeout).
    let continuationToken = '';
    do {
      const token = continuationToken;
      const page = await answer(what, () => client.listObjectsV2Query(bucket, `${keyPrefix}${prefix}`, token, '', 1000, ''));
      for (const item of page.objects) {
        if (item.name === undefined) continue; // a common prefix, not an object
        yield { key: item.name.slice(keyPrefix.length), size: item.size ?? 0, modifiedAt: item.lastModified ?? new Date(0) };
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : '';
    } while (continuationToken !== '');
  }

  async function remove(key: string): Promise<void> {
    try {
      await answer(`removing ${JSON.stringify(key)} from ${location}`, () => client.removeObject(bucket, fullKey(key)), key);
    } catch (error) {
      if (!(error instanceof TidemarkError) || error.code !== 'STORAGE_NOT_FOUND') throw error;
    }
  }

  return {
    properties: { kind: 's3', location },
    save,
    open,
    stat,
    list,
    remove,
    async close(): Promise<void> {
      agent.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Bounded calls. Each call's HTTP requests are tracked (through the client's `transport` and an
// AsyncLocalStorage scope), so that a call which takes too long can destroy exactly its own
// requests: the sockets close, the client's promise settles, nothing waits on a frozen server.

interface CallScope {
  readonly requests: Set<http.ClientRequest>;
}

type Transport = Pick<typeof http, 'request'>;

interface BoundedCalls {
  /** The client's transport: http(s).request, recording each request in the running call's scope. */
  readonly transport: Transport;
  /** A call that moves no data of ours: it must be answered within the request timeout. */
  answer<T>(what: string, call: () => Promise<T>, key?: string): Promise<T>;
  /** A call that moves data (a part, a small object): it may take as long as its socket keeps moving bytes. */
  transfer<T>(what: string, call: () => Promise<T>, key?: string): Promise<T>;
  readonly stallMs: number;
}

const stalled = (what: string, stallMs: number): TidemarkError =>
  new TidemarkError('STORAGE_UNAVAILABLE', `${what} failed: no progress for ${formatSeconds(stallMs)} (the S3 server stopped answering); check the storage backend and retry`);

function boundedCalls(base: Transport, requestTimeoutMs: number, stallMs: number): BoundedCalls {
  const scopes = new AsyncLocalStorage<CallScope>();
  const transport: Transport = {
    request: ((...args: Parameters<typeof http.request>) => {
      const request = (base.request as (...a: Parameters<typeof http.request>) => http.ClientRequest)(...args);
      const scope = scopes.getStore();
      if (scope !== undefined) {
        scope.requests.add(request);
        request.once('close', () => scope.requests.delete(request));
      }
      return request;
    }) as typeof http.request,
  };

  /** Runs `call` in its own scope; `watch` starts its clock and returns how to stop it. */
  function run<T>(what: string, call: () => Promise<T>, key: string | undefined, watch: (scope: CallScope, expire: (error: TidemarkError) => void) => () => void): Promise<T> {
    const scope: CallScope = { requests: new Set() };
    const running = scopes.run(scope, call);
    running.catch(() => undefined);
    let stopWatching: () => void = () => undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      stopWatching = watch(scope, (error) => {
        for (const request of scope.requests) {
          // The call already fails with `error`; what the destroyed request emits after this
          // (a reset, an aborted response) must not surface anywhere else.
          request.on('error', () => undefined);
          request.destroy();
        }
        reject(error);
      });
    });
    return Promise.race([running, expired])
      .catch((error: unknown) => {
        throw mapError(error, what, key);
      })
      .finally(() => stopWatching());
  }

  return {
    transport,
    stallMs,
    answer: (what, call, key) =>
      run(what, call, key, (_scope, expire) => {
        const timer = setTimeout(
          () => expire(new TidemarkError('STORAGE_UNAVAILABLE', `${what} failed: no answer within ${formatSeconds(requestTimeoutMs)} (storage.requestTimeoutSeconds); check the storage backend and retry`)),
          requestTimeoutMs,
        );
        return () => clearTimeout(timer);
      }),
    transfer: (what, call, key) =>
      run(what, call, key, (scope, expire) => {
        // Progress is what the call's sockets moved, either way; a keep-alive socket's earlier
        // traffic does not matter, only whether the count still changes.
        let moved = -1;
        let movedAt = Date.now();
        const timer = setInterval(() => {
          let now = 0;
          for (const request of scope.requests) now += (request.socket?.bytesWritten ?? 0) + (request.socket?.bytesRead ?? 0);
          if (now !== moved) {
            moved = now;
            movedAt = Date.now();
          } else if (Date.now() - movedAt >= stallMs) {
            expire(stalled(what, stallMs));
          }
        }, Math.max(50, Math.min(1_000, stallMs / 4)));
        return () => clearInterval(timer);
      }),
  };
}

function parseEndpoint(config: S3BackendConfig): { host: string; port: number | undefined; useSSL: boolean } {
  if (!config.endPoint.includes('://')) return { host: config.endPoint, port: config.port, useSSL: config.useSSL };
  let url: URL;
  try {
    url = new URL(config.endPoint);
  } catch (error) {
    throw new TidemarkError('CONFIG_INVALID', `storage endpoint ${JSON.stringify(config.endPoint)} is not a valid URL; use e.g. http://minio:9000`, { cause: error });
  }
  const useSSL = url.protocol === 'https:';
  const port = url.port ? Number(url.port) : config.port;
  return { host: url.hostname, port, useSSL };
}

function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
