import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { TidemarkError } from '@tidemark/contracts';
import type { ByteRange, ObjectInfo, SaveOptions, StorageBackend } from './backend.js';
import { checkKey, notFound, unavailable } from './errors.js';
import { emptyStream, toReadable } from './streams.js';

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
}

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
  const agent = endpoint.useSSL ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const region = config.region ?? 'us-east-1';
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
  });
  const bucket = config.bucket;
  const keyPrefix = normalizePrefix(config.prefix);
  const location = `s3://${bucket}/${keyPrefix}`;
  const fullKey = (key: string): string => {
    checkKey(key);
    return `${keyPrefix}${key}`;
  };

  try {
    if (!(await client.bucketExists(bucket))) {
      if (config.createBucket === false) {
        throw new TidemarkError('STORAGE_UNAVAILABLE', `bucket ${JSON.stringify(bucket)} does not exist; create it or set createBucket`, { retryable: false });
      }
      await client.makeBucket(bucket, region).catch((error: unknown) => {
        const code = (error as { code?: unknown }).code;
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw error;
      });
    }
  } catch (error) {
    agent.destroy();
    throw mapError(error, `opening bucket ${JSON.stringify(bucket)} at ${endpoint.host}`);
  }

  async function save(key: string, body: Readable | Uint8Array, options: SaveOptions = {}): Promise<number> {
    const objectName = fullKey(key);
    const headers: Record<string, string> = { 'Content-Type': options.contentType ?? 'application/octet-stream' };
    const what = `saving ${JSON.stringify(key)} to ${location}`;
    if (body instanceof Uint8Array) {
      const buffer = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      await client.putObject(bucket, objectName, buffer, buffer.length, headers).catch((error: unknown) => {
        throw mapError(error, what);
      });
      return buffer.length;
    }
    // Parts are cut here rather than by client.putObject: it sizes parts for a 5 TiB object when the
    // size is unknown (a ~550 MiB buffer), resumes uploads it finds by name, and never aborts.
    let uploadId: string | undefined;
    const etags: { part: number; etag: string }[] = [];
    let total = 0;
    try {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flushPart = async (part: Buffer): Promise<void> => {
        uploadId ??= await client.initiateNewMultipartUpload(bucket, objectName, headers).catch((error: unknown) => {
          throw mapError(error, what);
        });
        const partNumber = etags.length + 1;
        const { etag } = await client
          .uploadPart({ bucketName: bucket, objectName, uploadID: uploadId, partNumber, headers: {} }, part)
          .catch((error: unknown) => {
            throw mapError(error, what);
          });
        etags.push({ part: partNumber, etag });
      };
      for await (const chunk of toReadable(body)) {
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
        await client.putObject(bucket, objectName, last, last.length, headers).catch((error: unknown) => {
          throw mapError(error, what);
        });
        return total;
      }
      await flushPart(last);
      // Only now does the object become visible, whole.
      await client.completeMultipartUpload(bucket, objectName, uploadId, etags).catch((error: unknown) => {
        throw mapError(error, what);
      });
      return total;
    } catch (error) {
      if (uploadId !== undefined) {
        const abandoned = uploadId;
        // Best effort: an upload left behind is invisible, and bucket lifecycle rules expire it.
        await client.abortMultipartUpload(bucket, objectName, abandoned).catch(() => undefined);
      }
      throw error;
    }
  }

  async function open(key: string, range?: ByteRange): Promise<Readable> {
    const objectName = fullKey(key);
    const what = `reading ${JSON.stringify(key)} from ${location}`;
    try {
      if (range?.length === 0) {
        await client.statObject(bucket, objectName);
        return emptyStream();
      }
      const offset = range?.offset ?? 0;
      // getPartialObject treats offset 0 and length 0 as "the whole object".
      return await client.getPartialObject(bucket, objectName, offset, range?.length ?? 0);
    } catch (error) {
      throw mapError(error, what, key);
    }
  }

  async function stat(key: string): Promise<ObjectInfo> {
    try {
      const info = await client.statObject(bucket, fullKey(key));
      return { key, size: info.size, modifiedAt: info.lastModified };
    } catch (error) {
      throw mapError(error, `reading the size of ${JSON.stringify(key)} in ${location}`, key);
    }
  }

  async function* list(prefix: string): AsyncIterable<ObjectInfo> {
    try {
      const items = client.listObjectsV2(bucket, `${keyPrefix}${prefix}`, true) as AsyncIterable<{ name?: string; size?: number; lastModified?: Date }>;
      for await (const item of items) {
        if (item.name === undefined) continue; // a common prefix, not an object
        yield { key: item.name.slice(keyPrefix.length), size: item.size ?? 0, modifiedAt: item.lastModified ?? new Date(0) };
      }
    } catch (error) {
      throw mapError(error, `listing ${JSON.stringify(prefix)} in ${location}`);
    }
  }

  async function remove(key: string): Promise<void> {
    try {
      await client.removeObject(bucket, fullKey(key));
    } catch (error) {
      const mapped = mapError(error, `removing ${JSON.stringify(key)} from ${location}`, key);
      if (mapped.code !== 'STORAGE_NOT_FOUND') throw mapped;
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
