// A real S3 endpoint for tests: s3rver (a filesystem-backed S3 server) in a child process, so its
// CPU and memory stay apart from the tests'. This same file is the child's entry point: run as
// `node s3.js --serve-s3rver <directory> [port]` it starts s3rver, prints {"port":N} and serves
// until its stdin closes (so the server dies with the test process even on a crash).
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startProcess, type StartedProcess } from './process.js';
import { testProvider } from './provider.js';
import { containerMinio } from './containers.js';

export interface S3Endpoint {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Where the server keeps its data (removed by stop()). */
  readonly directory: string;
  stop(): Promise<void>;
}

/**
 * An S3 server run by the test as a local process (s3rver, or Ceph's radosgw), with fault
 * controls. Through every fault the endpoint keeps its port and its data.
 */
export interface LocalS3Endpoint extends S3Endpoint {
  /** SIGSTOP: connections are still accepted, nothing is answered. */
  freeze(): void;
  /** SIGCONT after freeze(): the server answers what it accepted meanwhile. */
  resume(): void;
  /** The server process is killed: its port refuses connections until startAgain(). */
  halt(): Promise<void>;
  /** After halt(): a new server process on the same port with the same data; resolves once it answers. */
  startAgain(): Promise<void>;
  /** The keys of the multipart uploads in `bucket` begun and neither completed nor aborted. */
  incompleteUploads(bucket: string): Promise<string[]>;
}

const SERVE_FLAG = '--serve-s3rver';
/** s3rver's built-in account; it accepts no other credentials. */
const S3RVER_KEY = 'S3RVER';
const READY_TIMEOUT_MS = 20_000;
const PORT_LINE = /^\{"port":\d+\}$/;
/** s3rver's directory for the uploads of one bucket (FilesystemStore.getResourcePath with no key). */
const UPLOADS_DIRECTORY = '._S3rver_uploads';

/** Starts s3rver on a free port with its data in a fresh temp directory. */
export async function startS3(): Promise<S3Endpoint> {
  if (testProvider() === 'containers') {
    // A real MinIO server instead of s3rver, where a Docker engine exists.
    const minio = await containerMinio();
    return { endpoint: minio.endpoint, port: minio.port, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region, directory: '', stop: () => minio.stop() };
  }
  return startLocalS3();
}

/** s3rver in a child process of ours, whatever the test provider: only a local process can be frozen or halted. */
export async function startLocalS3(): Promise<LocalS3Endpoint> {
  const directory = await mkdtemp(join(tmpdir(), 'tidemark-s3-'));
  let server: StartedProcess;
  let port: number;
  try {
    ({ server, port } = await serveS3rver(directory));
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    accessKey: S3RVER_KEY,
    secretKey: S3RVER_KEY,
    region: 'us-east-1',
    directory,
    freeze: () => server.signal('SIGSTOP'),
    resume: () => server.signal('SIGCONT'),
    halt: async () => void (await server.stop({ signal: 'SIGKILL' })),
    startAgain: async () => {
      if (!server.hasExited()) throw new Error('s3rver is still running: halt() it before starting it again');
      ({ server } = await serveS3rver(directory, port));
    },
    incompleteUploads: (bucket) => s3rverIncompleteUploads(directory, bucket),
    stop: () => (stopped ??= server.stop().then(() => rm(directory, { recursive: true, force: true }))),
  };
}

/** Starts the s3rver child on `port` (a free one by default) and waits for it to listen. */
async function serveS3rver(directory: string, port = 0): Promise<{ server: StartedProcess; port: number }> {
  const server = startProcess(process.execPath, [fileURLToPath(import.meta.url), SERVE_FLAG, directory, String(port)], { name: 's3rver', exitWithParent: true });
  try {
    const line = await server.waitForOutput(PORT_LINE, READY_TIMEOUT_MS);
    return { server, port: (JSON.parse(line) as { port: number }).port };
  } catch (error) {
    await server.stop({ signal: 'SIGKILL' });
    throw error;
  }
}

async function s3rverIncompleteUploads(directory: string, bucket: string): Promise<string[]> {
  // An upload whose key file is not written yet is still being begun: it is in progress all the same.
  return (await uploadsIn(join(directory, 'data', bucket, UPLOADS_DIRECTORY))).map(({ id, key }) => key ?? `(upload ${id})`);
}

/** The multipart uploads s3rver keeps in `uploadsDirectory`: one directory per upload id, its key in a file. */
async function uploadsIn(uploadsDirectory: string): Promise<{ id: string; key: string | undefined; initiated: Date }[]> {
  const ids = await readdir(uploadsDirectory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return Promise.all(
    ids.map(async (id) => ({
      id,
      key: await readFile(join(uploadsDirectory, id, 'key'), 'utf8').catch(() => undefined),
      initiated: (await stat(join(uploadsDirectory, id)).catch(() => undefined))?.birthtime ?? new Date(),
    })),
  );
}

// ---------------------------------------------------------------------------------------------
// Child side.

interface S3rverStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObject(object: { bucket: string; key: string; content: NodeJS.ReadableStream | Buffer; metadata: unknown }): Promise<{ size: number; md5: string }>;
  putPart(bucket: string, uploadId: string, partNumber: string | number, content: NodeJS.ReadableStream): Promise<{ size: number; md5: string }>;
  listObjects(bucket: string, options: ListOptions): Promise<{ objects: { key: string }[]; commonPrefixes: string[]; isTruncated: boolean }>;
}
interface ListOptions {
  delimiter?: string;
  startAfter?: string;
  prefix?: string;
  maxKeys?: number;
}
type Middleware = (ctx: { req: IncomingMessage; res: ServerResponse; respond?: boolean }, next: () => Promise<void>) => Promise<void>;
interface S3rverApp {
  store: S3rverStore;
  middleware: Middleware[];
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

async function serve(directory: string, port: number): Promise<void> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
  const dataDirectory = join(directory, 'data');
  const partialDirectory = join(directory, 'partial');
  await mkdir(dataDirectory, { recursive: true });
  await mkdir(partialDirectory, { recursive: true });
  const app = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dataDirectory });
  patchStore(app.store, partialDirectory);
  // Koa composes the middleware list when the server starts, so a handler put first here answers
  // the requests s3rver lacks before its router rejects them.
  app.middleware.unshift(missingOperations(app.store));
  const address = await app.run();
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => void app.close().finally(() => process.exit(0)));
}

/**
 * Operations s3rver 3.7 does not implement but the `minio` client calls.
 * - GET /bucket?uploads (ListMultipartUploads): minio's putObject looks for an upload to resume
 *   before every multipart upload and fails on s3rver's NotImplemented, and the S3 backend looks up
 *   an upload it asked for without learning its id. We list the uploads under the prefix (one page).
 * - DELETE /bucket/key?uploadId=… (AbortMultipartUpload): s3rver answers MethodNotAllowed. We drop
 *   the upload's parts, as S3 does, so an aborted upload leaves nothing behind.
 * Bucket location (GET ?location) is implemented by s3rver (an empty constraint = us-east-1).
 */
function missingOperations(store: S3rverStore): Middleware {
  return async (ctx, next) => {
    const url = new URL(ctx.req.url ?? '/', 'http://s3rver');
    const segments = url.pathname.split('/').filter(Boolean);
    const bucket = segments[0];
    if (ctx.req.method === 'GET' && segments.length === 1 && url.searchParams.has('uploads') && bucket !== undefined) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const uploads = (await uploadsIn(store.getResourcePath(bucket, undefined, 'uploads'))).filter(({ key }) => key?.startsWith(prefix));
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'application/xml' });
      ctx.res.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
          '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          `<Bucket>${escapeXml(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
          '<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>' +
          `<Prefix>${escapeXml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>` +
          uploads.map(({ id, key, initiated }) => `<Upload><Key>${escapeXml(key ?? '')}</Key><UploadId>${escapeXml(id)}</UploadId><StorageClass>STANDARD</StorageClass><Initiated>${initiated.toISOString()}</Initiated></Upload>`).join('') +
          '</ListMultipartUploadsResult>',
      );
      return;
    }
    const uploadId = url.searchParams.get('uploadId');
    if (ctx.req.method === 'DELETE' && segments.length > 1 && uploadId !== null && bucket !== undefined) {
      if (/^[0-9a-f]+$/.test(uploadId)) {
        await rm(join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId), { recursive: true, force: true });
      }
      ctx.respond = false;
      ctx.res.writeHead(204);
      ctx.res.end();
      return;
    }
    await next();
  };
}

/**
 * s3rver's filesystem store answers a PUT (object or part) as soon as its hashing transform has seen
 * the bytes, before the file write has finished, and it writes objects in place. A GET right after
 * a PUT could then read a short file, and a reader could see half an object. Here both write to a
 * temp file, wait for it to be flushed, and rename it into place (atomic, as S3 is).
 */
function patchStore(store: S3rverStore, partialDirectory: string): void {
  const writeAtomically = async (path: string, content: NodeJS.ReadableStream | Buffer): Promise<{ size: number; md5: string }> => {
    const hash = createHash('md5');
    let size = 0;
    const temp = join(partialDirectory, randomBytes(8).toString('hex'));
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      if (Buffer.isBuffer(content)) {
        measure.end(content);
        await pipeline(measure, createWriteStream(temp));
      } else {
        await pipeline(content, measure, createWriteStream(temp));
      }
      await mkdir(dirname(path), { recursive: true });
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return { size, md5: hash.digest('hex') };
  };
  store.putObject = async function putObject(object) {
    const result = await writeAtomically(store.getResourcePath(object.bucket, object.key, 'object'), object.content);
    await store.putMetadata(object.bucket, object.key, object.metadata, result.md5);
    return result;
  };
  // With a delimiter, s3rver does not walk below a common prefix, so a prefix holding only deeper
  // keys ("a/" for "a/b/c" alone) goes missing. S3 lists it: here the keys are listed without the
  // delimiter and grouped into common prefixes, as S3 does.
  const listObjects = store.listObjects.bind(store);
  store.listObjects = async function listWithDelimiter(bucket, options) {
    const { delimiter = '', prefix = '', maxKeys = Infinity } = options;
    if (delimiter === '') return listObjects(bucket, options);
    const all = await listObjects(bucket, { ...options, delimiter: '', maxKeys: Infinity });
    const objects: { key: string }[] = [];
    const commonPrefixes = new Set<string>();
    let isTruncated = false;
    for (const object of all.objects) {
      const at = object.key.indexOf(delimiter, prefix.length);
      if (at !== -1) commonPrefixes.add(object.key.slice(0, at + delimiter.length));
      else if (objects.length < maxKeys) objects.push(object);
      else isTruncated = true;
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
  };
  store.putPart = async function putPart(bucket, uploadId, partNumber, content) {
    const partPath = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
    const result = await writeAtomically(partPath, content);
    await writeFile(`${partPath}.md5`, result.md5);
    return result;
  };
}

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

if (process.argv[2] === SERVE_FLAG && process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const directory = process.argv[3];
  if (directory === undefined) {
    process.stderr.write('usage: s3.js --serve-s3rver <directory> [port]\n');
    process.exit(2);
  }
  serve(directory, Number(process.argv[4] ?? 0)).catch((error: unknown) => {
    process.stderr.write(`s3rver failed to start: ${String(error)}\n`);
    process.exit(1);
  });
}
