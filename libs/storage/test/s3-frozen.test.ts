// A hung S3 server (s3rver frozen with SIGSTOP: connections are accepted, nothing is answered)
// against the real S3 backend: every call fails within its bound with a retryable error, and a
// save cut off this way leaves nothing visible once the server is resumed.
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toErrorInfo } from '@tidemark/contracts';
import { createS3Backend, readAll, type StorageBackend } from '@tidemark/storage';
import { eventually, startLocalS3, type LocalS3Endpoint } from '@tidemark/testkit';
import { MiB } from './helpers.js';

const STALL_MS = 2_000;
const REQUEST_TIMEOUT_MS = 2_000;
/** Room for the failure to surface after its window on a busy 2-core machine. */
const SLACK_MS = 3_000;

let s3: LocalS3Endpoint;
let backend: StorageBackend;
let buckets = 0;

beforeAll(async () => {
  s3 = await startLocalS3();
});
afterAll(async () => {
  await s3?.stop();
});
afterEach(async () => {
  s3.resume();
  await backend?.close();
});

async function freshBackend(): Promise<StorageBackend> {
  backend = await createS3Backend({
    endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region,
    bucket: `frozen-${++buckets}`, prefix: 'tidemark', requestTimeoutMs: REQUEST_TIMEOUT_MS, stallMs: STALL_MS,
  });
  return backend;
}

/** `total` bytes in 1 MiB pieces, made as they are read; `onRead(bytes)` after each piece. */
function generated(total: number, onRead: (bytes: number) => void): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      sent += MiB;
      this.push(Buffer.alloc(MiB, sent / MiB));
      onRead(sent);
    },
  });
}

describe('s3 backend with the server frozen', () => {
  it('a large save fails within the stall window with a retryable error, and leaves no object behind', async () => {
    const store = await freshBackend();
    let frozenAt = 0;
    // Freeze once the first 8 MiB part is on its way: the upload is then mid-flight.
    const body = generated(64 * MiB, (bytes) => {
      if (bytes === 12 * MiB && frozenAt === 0) {
        s3.freeze();
        frozenAt = Date.now();
      }
    });
    let bodyError: unknown;
    body.on('error', (e) => (bodyError = e));
    const error = await store.save('big/data.bin', body, { size: 64 * MiB }).catch((e: unknown) => e);
    const tookMs = Date.now() - frozenAt;
    expect(frozenAt).toBeGreaterThan(0);
    expect(toErrorInfo(error)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true, message: expect.stringContaining('no progress for 2 s') });
    // The stall, then the (bounded) attempt to abort the upload on the frozen server.
    expect(tookMs).toBeLessThan(STALL_MS + REQUEST_TIMEOUT_MS + SLACK_MS);
    // The body (a pipeline's output, in the agents) is destroyed with the cause, so its producer learns why.
    await new Promise((resolve) => setImmediate(resolve));
    expect(body.destroyed).toBe(true);
    expect(bodyError).toBe(error);

    s3.resume();
    await expect(store.stat('big/data.bin')).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
    const listed: string[] = [];
    for await (const object of store.list('big/')) listed.push(object.key);
    expect(listed).toEqual([]);
    // The same save succeeds once the server answers again.
    expect(await store.save('big/data.bin', generated(20 * MiB, () => undefined), { size: 20 * MiB })).toBe(20 * MiB);
    expect((await store.stat('big/data.bin')).size).toBe(20 * MiB);
  }, 30_000);

  it('calls that move no data fail after the request timeout, naming the call and the timeout', async () => {
    const store = await freshBackend();
    await store.save('small.json', Buffer.from('{}'));
    await store.save('doomed.json', Buffer.from('{}'));
    s3.freeze();
    const started = Date.now();
    const results = await Promise.all([
      store.stat('small.json').catch((e: unknown) => e),
      // A call given up on may still be carried out once the server resumes: hence another key.
      store.remove('doomed.json').catch((e: unknown) => e),
      (async () => {
        for await (const _object of store.list('')) return undefined;
        return undefined;
      })().catch((e: unknown) => e),
      store.open('small.json').catch((e: unknown) => e),
      store.save('other.json', Buffer.from('{}')).catch((e: unknown) => e),
    ]);
    expect(Date.now() - started).toBeLessThan(Math.max(STALL_MS, REQUEST_TIMEOUT_MS) + SLACK_MS);
    for (const result of results) expect(toErrorInfo(result)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true });
    expect((results[0] as Error).message).toMatch(/reading the size of "small.json" in s3:\/\/frozen-\d+\/tidemark\/ failed: no answer within 2 s \(storage.requestTimeoutSeconds\)/);
    s3.resume();
    expect(String(await readAll(await store.open('small.json')))).toBe('{}');
  }, 30_000);

  it('a download that stops moving fails within the stall window', async () => {
    const store = await freshBackend();
    await store.save('download.bin', generated(48 * MiB, () => undefined), { size: 48 * MiB });
    const stream = await store.open('download.bin');
    let received = 0;
    let frozenAt = 0;
    const error = await (async () => {
      for await (const piece of stream) {
        received += (piece as Buffer).length;
        if (frozenAt === 0 && received > MiB) {
          s3.freeze();
          frozenAt = Date.now();
        }
      }
    })().catch((e: unknown) => e);
    expect(frozenAt).toBeGreaterThan(0);
    expect(received).toBeLessThan(48 * MiB);
    expect(toErrorInfo(error)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true, message: expect.stringContaining('reading "download.bin"') });
    expect(Date.now() - frozenAt).toBeLessThan(STALL_MS + SLACK_MS);
  }, 30_000);
});

describe('s3 backend with the server frozen as an upload starts', () => {
  it('the upload the server starts after it resumes, unbeknown to the save that gave up on it, is aborted after the next successful save', async () => {
    const store = await freshBackend();
    s3.freeze();
    // More than one part: the save starts a multipart upload, and gets no answer.
    const error = await store.save('big/data.bin', generated(20 * MiB, () => undefined), { size: 20 * MiB }).catch((e: unknown) => e);
    expect(toErrorInfo(error)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true, message: expect.stringContaining('no answer within 2 s') });
    s3.resume();
    // The request was accepted while frozen: once resumed, the server carries it out.
    await eventually(async () => (await s3.incompleteUploads(`frozen-${buckets}`)).includes('tidemark/big/data.bin'), 20_000, 'the server to start the upload it was asked for while frozen');
    await store.save('next.json', Buffer.from('{}'));
    expect(await s3.incompleteUploads(`frozen-${buckets}`)).toEqual([]);
  }, 60_000);
});

describe('s3 backend with the server stopped mid-upload', () => {
  it('the upload it could not abort then is aborted after the next successful save, once the server is back', async () => {
    const store = await freshBackend();
    let halting: Promise<void> | undefined;
    const body = generated(64 * MiB, (bytes) => {
      if (bytes === 12 * MiB) halting ??= s3.halt();
    });
    const error = await store.save('big/data.bin', body, { size: 64 * MiB }).catch((e: unknown) => e);
    await halting;
    expect(toErrorInfo(error)).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retryable: true });
    await s3.startAgain();
    // The abort was refused with the connection: the upload is still open on the server.
    expect(await s3.incompleteUploads(`frozen-${buckets}`)).toEqual(['tidemark/big/data.bin']);
    await store.save('next.json', Buffer.from('{}'));
    expect(await s3.incompleteUploads(`frozen-${buckets}`)).toEqual([]);
  }, 30_000);
});
