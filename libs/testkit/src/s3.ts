// A real S3 endpoint for tests: s3rver (a filesystem-backed S3 server) in a child process, so its
// CPU and memory stay apart from the tests'. This same file is the child's entry point: run as
// `node s3.js --serve-s3rver <directory>` it starts s3rver, prints {"port":N} and serves until its
// stdin closes (so the server dies with the test process even on a crash).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** The local s3rver, which fault tests can freeze (SIGSTOP: connections are accepted, nothing is answered) and resume. */
export interface LocalS3Endpoint extends S3Endpoint {
  freeze(): void;
  resume(): void;
}

const SERVE_FLAG = '--serve-s3rver';
/** s3rver's built-in account; it accepts no other credentials. */
const S3RVER_KEY = 'S3RVER';
const READY_TIMEOUT_MS = 20_000;

/** Starts s3rver on a free port with its data in a fresh temp directory. */
export async function startS3(): Promise<S3Endpoint> {
  if (testProvider() === 'containers') {
    // A real MinIO server instead of s3rver, where a Docker engine exists.
    const minio = await containerMinio();
    return { endpoint: minio.endpoint, port: minio.port, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region, directory: '', stop: () => minio.stop() };
  }
  return startLocalS3();
}

/** s3rver in a child process of ours, whatever the test provider: only a local process can be frozen. */
export async function startLocalS3(): Promise<LocalS3Endpoint> {
  const directory = await mkdtemp(join(tmpdir(), 'tidemark-s3-'));
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), SERVE_FLAG, directory], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let port: number;
  try {
    port = await readPort(child);
  } catch (error) {
    child.kill('SIGKILL');
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
    freeze: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop: () => {
      // A frozen server would never see its stdin close.
      child.kill('SIGCONT');
      return (stopped ??= stopChild(child).then(() => rm(directory, { recursive: true, force: true })));
    },
  };
}

function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error('s3rver did not start within 20s; see its stderr above')), READY_TIMEOUT_MS);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`s3rver exited with code ${code} before it was ready`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const line = output.split('\n')[0];
      if (output.includes('\n') && line !== undefined) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        const { port } = JSON.parse(line) as { port: number };
        resolve(port);
      }
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.end(); // the child exits when its stdin closes
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Child side.

interface S3rverStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  putObject(object: { bucket: string; key: string; content: NodeJS.ReadableStream | Buffer; metadata: unknown }): Promise<{ size: number; md5: string }>;
  putPart(bucket: string, uploadId: string, partNumber: string | number, content: NodeJS.ReadableStream): Promise<{ size: number; md5: string }>;
}
type Middleware = (ctx: { req: IncomingMessage; res: ServerResponse; respond?: boolean }, next: () => Promise<void>) => Promise<void>;
interface S3rverApp {
  store: S3rverStore;
  middleware: Middleware[];
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

async function serve(directory: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
  const dataDirectory = join(directory, 'data');
  const partialDirectory = join(directory, 'partial');
  await mkdir(dataDirectory, { recursive: true });
  await mkdir(partialDirectory, { recursive: true });
  const app = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dataDirectory });
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
 *   before every multipart upload and fails on s3rver's NotImplemented. We answer that none exist.
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
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'application/xml' });
      ctx.res.end(
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
          '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          `<Bucket>${escapeXml(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
          '<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>' +
          '<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>',
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
    process.stderr.write('usage: s3.js --serve-s3rver <directory>\n');
    process.exit(2);
  }
  serve(directory).catch((error: unknown) => {
    process.stderr.write(`s3rver failed to start: ${String(error)}\n`);
    process.exit(1);
  });
}
