// The fault controls of both local S3 servers, the same for s3rver and Ceph RGW: halted, the port
// refuses connections; started again, it serves the same data on the same port; frozen, it accepts
// a connection and answers nothing until resumed. incompleteUploads() sees a begun multipart upload.
import { connect } from 'node:net';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Through the built package: s3rver's child process runs the built s3.js.
import { startLocalS3, startRgw, type LocalS3Endpoint } from '@tidemark/testkit';

const BUCKET = 'faults';

/** Whether a TCP connection to the port is accepted (a frozen server's kernel still accepts). */
const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const answer = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.once('connect', () => answer(true));
    socket.once('error', () => answer(false));
  });

describe.each([
  ['s3rver', startLocalS3],
  ['rgw', startRgw],
] as const)('fault controls of the local S3 server (%s)', (_kind, start) => {
  let s3: LocalS3Endpoint;
  let client: Client;

  beforeAll(async () => {
    s3 = await start();
    client = new Client({ endPoint: '127.0.0.1', port: s3.port, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, pathStyle: true });
    await client.makeBucket(BUCKET, s3.region);
  }, 120_000);

  afterAll(async () => {
    await s3?.stop();
  });

  it('halted: the port refuses connections; started again: the same port serves the same data', async () => {
    await client.putObject(BUCKET, 'kept', Buffer.from('still here'));
    await s3.halt();
    expect(await accepts(s3.port)).toBe(false);
    await s3.startAgain();
    const body = await client.getObject(BUCKET, 'kept');
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('still here');
  }, 120_000);

  it('frozen: a request is accepted and not answered until resumed', async () => {
    s3.freeze();
    let answered = false;
    const listing = client.bucketExists(BUCKET).then((exists) => {
      answered = true;
      return exists;
    });
    try {
      expect(await accepts(s3.port)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(answered).toBe(false);
    } finally {
      s3.resume();
    }
    expect(await listing).toBe(true);
  }, 60_000);

  it('lists a begun multipart upload until it is aborted', async () => {
    const uploadId = await client.initiateNewMultipartUpload(BUCKET, 'big/object', {});
    expect(await s3.incompleteUploads(BUCKET)).toEqual(['big/object']);
    await client.abortMultipartUpload(BUCKET, 'big/object', uploadId);
    expect(await s3.incompleteUploads(BUCKET)).toEqual([]);
  }, 60_000);
});
