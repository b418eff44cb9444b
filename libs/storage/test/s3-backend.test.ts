import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { createBackend, createS3Backend, partSizeFor, type S3BackendConfig } from '@tidemark/storage';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { describeBackendConformance } from './conformance.js';
import { MiB, failingSource, readText } from './helpers.js';

let s3: S3Endpoint;
let buckets = 0;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

const configFor = (overrides: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  endPoint: s3.endpoint,
  useSSL: false,
  accessKey: s3.accessKey,
  secretKey: s3.secretKey,
  region: s3.region,
  bucket: `conformance-${++buckets}`,
  prefix: 'tidemark',
  ...overrides,
});

describeBackendConformance('s3', () => createS3Backend(configFor()));

describe('s3 backend', () => {
  it('creates a missing bucket and keeps keys under its prefix', async () => {
    const bucket = `prefixed-${++buckets}`;
    const prefixed = await createS3Backend(configFor({ bucket, prefix: '/team-a/' }));
    const whole = await createS3Backend(configFor({ bucket, prefix: '' }));
    await prefixed.save('x/y', Buffer.from('inside'));
    const keys: string[] = [];
    for await (const object of whole.list('')) keys.push(object.key);
    expect(keys).toEqual(['team-a/x/y']);
    expect(prefixed.properties).toEqual({ kind: 's3', location: `s3://${bucket}/team-a/` });
    await Promise.all([prefixed.close(), whole.close()]);
  });

  it('a missing bucket with createBucket false is a permanent STORAGE_UNAVAILABLE', async () => {
    const error = await createS3Backend(configFor({ createBucket: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidemarkError);
    expect((error as TidemarkError).code).toBe('STORAGE_UNAVAILABLE');
    expect((error as TidemarkError).retryable).toBe(false);
  });

  it('an unreachable endpoint is a retryable STORAGE_UNAVAILABLE that names no secret', async () => {
    const error = await createS3Backend(configFor({ endPoint: 'http://127.0.0.1:1', secretKey: 'very-secret-value' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidemarkError);
    expect((error as TidemarkError).code).toBe('STORAGE_UNAVAILABLE');
    expect((error as TidemarkError).retryable).toBe(true);
    expect((error as TidemarkError).message).not.toContain('very-secret-value');
  });

  it('a failed multipart save is aborted: no object and no pending upload remain', async () => {
    const bucket = `aborted-${++buckets}`;
    const backend = await createBackend({ type: 's3', ...configFor({ bucket }) });
    await expect(backend.save('big', failingSource(20 * MiB))).rejects.toThrow('source failed midway');
    const bucketDirectory = join(s3.directory, 'data', bucket);
    const leftovers = (await readdir(bucketDirectory, { recursive: true })).filter((name) => !name.endsWith('_S3rver_uploads'));
    expect(leftovers).toEqual([]);
    await backend.save('big', Buffer.from('fine'));
    expect(await readText(await backend.open('big'))).toBe('fine');
    await backend.close();
  });

  it('part sizes stay small when the size is unknown and fit 10,000 parts when it is known', () => {
    expect(partSizeFor(0, undefined)).toBe(8 * MiB);
    expect(partSizeFor(999, undefined)).toBe(8 * MiB);
    expect(partSizeFor(1000, undefined)).toBe(16 * MiB);
    expect(partSizeFor(0, 10 * MiB)).toBe(8 * MiB);
    const huge = 1024 * 1024 * MiB; // 1 TiB
    expect(partSizeFor(0, huge) * 10_000).toBeGreaterThanOrEqual(huge);
    expect(partSizeFor(0, huge) % MiB).toBe(0);
  });
});
