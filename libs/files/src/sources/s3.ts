// Objects under a prefix of a bucket in another S3 endpoint. S3 lists keys in byte order, which
// is not walk order around '/' ("a.txt" < "a/b" in bytes, "a/b" first in the tree), so the
// prefix is listed one "directory" at a time (delimiter '/'): its objects and sub-prefixes are
// sorted together by name, and each sub-prefix is walked in its turn. Memory: one level's names
// per depth, as for a local directory.
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { Client } from 'minio';
import { TidemarkError } from '@tidemark/contracts';
import { formatSeconds, watchForStall } from '@tidemark/pipeline';
import { checkRelativePath } from '../tree/validate.js';
import type { FilesSource, FilesSourceConfig, SourceEntry } from './source.js';

type S3SourceConfig = Extract<FilesSourceConfig, { kind: 's3' }>;

/** The minio client waits forever on a silent server: a listing or a stat gets this long. */
const REQUEST_TIMEOUT_MS = 60_000;
/** A download that moves no bytes for this long fails (it never caps one that moves). */
const STALL_MS = 60_000;
const PAGE_KEYS = 1000;
const OBJECT_MODE = 0o644;

export function openS3Source(config: S3SourceConfig): FilesSource {
  const endpoint = parseEndpoint(config.endpoint);
  const agent = endpoint.useSSL ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const client = new Client({
    endPoint: endpoint.host,
    ...(endpoint.port === undefined ? {} : { port: endpoint.port }),
    useSSL: endpoint.useSSL,
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region: config.region ?? 'us-east-1',
    pathStyle: true,
    transportAgent: agent,
  });
  const bucket = config.bucket;
  const prefix = normalizePrefix(config.prefix);
  const location = `s3://${bucket}/${prefix}`;

  async function* entries(onProblem: Parameters<FilesSource['entries']>[0]): AsyncGenerator<SourceEntry> {
    async function* walk(directory: string): AsyncGenerator<SourceEntry> {
      const level: { name: Buffer; object?: { size: number; etag: string; lastModified: Date }; isPrefix: boolean }[] = [];
      let token = '';
      do {
        const page = await answered(`listing ${location}${directory}`, client.listObjectsV2Query(bucket, `${prefix}${directory}`, token, '/', PAGE_KEYS, ''));
        for (const item of page.objects) {
          if (item.prefix !== undefined) {
            const name = String(item.prefix).slice(prefix.length + directory.length, -1);
            level.push({ name: Buffer.from(name), isPrefix: true });
          } else if (item.name !== undefined) {
            const name = String(item.name).slice(prefix.length + directory.length);
            level.push({ name: Buffer.from(name), isPrefix: false, object: { size: item.size, etag: item.etag, lastModified: item.lastModified } });
          }
        }
        token = page.isTruncated ? page.nextContinuationToken : '';
      } while (token !== '');
      // An object "a" comes before the objects under "a/" (its path is their prefix).
      level.sort((a, b) => Buffer.compare(a.name, b.name) || Number(a.isPrefix) - Number(b.isPrefix));
      for (const { name, object, isPrefix } of level) {
        const path = `${directory}${name.toString()}`;
        if (isPrefix) {
          if (name.length === 0 || name.toString() === '.' || name.toString() === '..') {
            onProblem(`${path}/`, 'unsupported_type', 'keys with an empty, "." or ".." segment have no place in a tree');
            continue;
          }
          yield* walk(`${path}/`);
          continue;
        }
        // A key ending in '/' (a "folder" marker some tools write) is not content.
        if (object === undefined || name.length === 0) continue;
        const invalid = checkRelativePath(path, undefined);
        if (invalid !== undefined) {
          onProblem(path, 'unsupported_type', `the key ${invalid}`);
          continue;
        }
        yield {
          path,
          type: 'file',
          mode: OBJECT_MODE,
          uid: 0,
          gid: 0,
          mtimeNs: nanoseconds(object.lastModified),
          size: object.size,
          etag: object.etag,
        };
      }
    }
    yield* walk('');
  }

  async function open(entry: SourceEntry): Promise<Readable> {
    const what = `reading ${location}${entry.path}`;
    const body = await answered(what, client.getObject(bucket, `${prefix}${entry.path}`));
    return watchForStall(body, { stallMs: STALL_MS, what });
  }

  async function restat(entry: SourceEntry): Promise<{ size: number; mtimeNs: string } | undefined> {
    try {
      const stat = await answered(`reading the size of ${location}${entry.path}`, client.statObject(bucket, `${prefix}${entry.path}`));
      return { size: stat.size, mtimeNs: nanoseconds(stat.lastModified) };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'NoSuchKey' || code === 'NotFound') return undefined;
      throw error;
    }
  }

  return { kind: 's3', location, entries, open, restat, close: async () => agent.destroy() };
}

/** Rejects with SOURCE_UNAVAILABLE when the server does not answer in time (the request itself is left to the agent's socket). */
async function answered<T>(what: string, call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TidemarkError('SOURCE_UNAVAILABLE', `${what}: no answer within ${formatSeconds(REQUEST_TIMEOUT_MS)}`)), REQUEST_TIMEOUT_MS);
  });
  call.catch(() => undefined);
  try {
    return await Promise.race([call, late]);
  } catch (error) {
    if (error instanceof TidemarkError) throw error;
    const code = (error as { code?: unknown }).code;
    if (code === 'NoSuchKey' || code === 'NotFound') throw error;
    const denied = code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch';
    throw new TidemarkError(denied ? 'SOURCE_AUTH_FAILED' : 'SOURCE_UNAVAILABLE', `${what} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      retryable: !denied && code !== 'NoSuchBucket',
    });
  } finally {
    clearTimeout(timer);
  }
}

function nanoseconds(date: Date): string {
  return (BigInt(date.getTime()) * 1_000_000n).toString();
}

function parseEndpoint(value: string): { host: string; port: number | undefined; useSSL: boolean } {
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `https://${value}`);
  } catch (error) {
    throw new TidemarkError('CONFIG_INVALID', `the files source endpoint ${JSON.stringify(value)} is not a valid URL; use e.g. http://minio:9000`, { cause: error });
  }
  return { host: url.hostname, port: url.port === '' ? undefined : Number(url.port), useSSL: url.protocol === 'https:' };
}

function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
