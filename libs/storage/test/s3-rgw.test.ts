// The S3 backend against Ceph RGW, the suites' second S3 server: the same conformance suite as
// s3rver, plus the S3 features s3rver lacks and the next storage work builds on (versioning,
// object lock in COMPLIANCE mode, lifecycle rules, listing and aborting multipart uploads).
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Backend, type S3BackendConfig } from '@tidemark/storage';
import { startRgw, type RgwEndpoint } from '@tidemark/testkit';
import { describeBackendConformance } from './conformance.js';
import { MiB, failingSource, readText } from './helpers.js';

let rgw: RgwEndpoint;
let client: Client;
let buckets = 0;
beforeAll(async () => {
  rgw = await startRgw();
  console.log(`Ceph RGW started in ${rgw.startupMs} ms`);
  client = new Client({ endPoint: '127.0.0.1', port: rgw.port, useSSL: false, accessKey: rgw.accessKey, secretKey: rgw.secretKey, region: rgw.region, pathStyle: true });
});
afterAll(async () => {
  await rgw?.stop();
});

const configFor = (overrides: Partial<S3BackendConfig> = {}): S3BackendConfig => ({
  endPoint: rgw.endpoint,
  useSSL: false,
  accessKey: rgw.accessKey,
  secretKey: rgw.secretKey,
  region: rgw.region,
  bucket: `rgw-conformance-${++buckets}`,
  prefix: 'tidemark',
  ...overrides,
});

describeBackendConformance('s3 on Ceph RGW', () => createS3Backend(configFor()));

describe('Ceph RGW as an S3 server', () => {
  it('a failed multipart save is aborted: no object and no pending upload remain', async () => {
    const bucket = `rgw-aborted-${++buckets}`;
    const backend = await createS3Backend(configFor({ bucket, prefix: '' }));
    await expect(backend.save('big', failingSource(20 * MiB))).rejects.toThrow('source failed midway');
    const pending: string[] = [];
    for await (const upload of client.listIncompleteUploads(bucket, '', true)) pending.push(upload.key);
    expect(pending).toEqual([]);
    const objects: string[] = [];
    for await (const object of client.listObjects(bucket, '', true)) if (object.name !== undefined) objects.push(object.name);
    expect(objects).toEqual([]);
    await backend.save('big', Buffer.from('fine'));
    expect(await readText(await backend.open('big'))).toBe('fine');
    await backend.close();
  });

  it('a bucket with object lock keeps every version, and COMPLIANCE retention refuses to delete one', async () => {
    const bucket = `rgw-locked-${++buckets}`;
    await client.makeBucket(bucket, rgw.region, { ObjectLocking: true });
    // Object lock turns versioning on by itself.
    expect(await client.getBucketVersioning(bucket)).toMatchObject({ Status: 'Enabled' });

    const first = await client.putObject(bucket, 'manifest.json', Buffer.from('first'));
    const second = await client.putObject(bucket, 'manifest.json', Buffer.from('second'));
    expect(first.versionId).toBeTruthy();
    expect(second.versionId).not.toBe(first.versionId);
    const versions: Array<{ versionId?: string | null; isLatest?: boolean }> = [];
    for await (const version of client.listObjects(bucket, 'manifest.json', true, { IncludeVersion: true })) versions.push(version);
    expect(versions.map((v) => v.versionId).sort()).toEqual([first.versionId, second.versionId].sort());
    const older = await client.getObject(bucket, 'manifest.json', { versionId: first.versionId! });
    expect(await readText(older)).toBe('first');

    const retainUntil = new Date(Date.now() + 60 * 60 * 1000);
    await client.putObjectRetention(bucket, 'manifest.json', { mode: 'COMPLIANCE', retainUntilDate: retainUntil.toISOString(), versionId: first.versionId! });
    expect(await client.getObjectRetention(bucket, 'manifest.json', { versionId: first.versionId! })).toMatchObject({ mode: 'COMPLIANCE' });
    // Not even the bucket's owner, nor a governance bypass, may delete a version under COMPLIANCE.
    for (const options of [{ versionId: first.versionId! }, { versionId: first.versionId!, governanceBypass: true }]) {
      const refused = await client.removeObject(bucket, 'manifest.json', options).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused, 'the locked version was deleted').toMatchObject({ code: 'AccessDenied' });
    }
    const stillThere = await client.getObject(bucket, 'manifest.json', { versionId: first.versionId! });
    expect(await readText(stillThere)).toBe('first');
  });

  it('keeps a lifecycle rule that expires old versions', async () => {
    const bucket = `rgw-lifecycle-${++buckets}`;
    await client.makeBucket(bucket, rgw.region);
    await client.setBucketVersioning(bucket, { Status: 'Enabled' });
    await client.setBucketLifecycle(bucket, {
      Rule: [{ ID: 'expire-old-versions', Status: 'Enabled', Filter: { Prefix: 'wal/' }, NoncurrentVersionExpiration: { NoncurrentDays: 7 } }],
    });
    const lifecycle = await client.getBucketLifecycle(bucket);
    expect(JSON.stringify(lifecycle)).toContain('expire-old-versions');
  });
});
