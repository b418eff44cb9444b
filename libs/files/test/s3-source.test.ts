// The s3 source against real S3 servers (s3rver, and Ceph RGW for S3's own listing semantics),
// chunks into the real repository (memory backend, encrypted: keyed chunk ids).
import { createHash, randomBytes } from 'node:crypto';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openChunkRepository, type ChunkRepository } from '@tidemark/chunks';
import { keyRingOf } from '@tidemark/pipeline';
import { createMemoryBackend } from '@tidemark/storage';
import { startRgw, startS3, type S3Endpoint } from '@tidemark/testkit';
import { openSource, takeSnapshot, type FilesSource, type FilesSourceConfig, type TreeEntry } from '../src/index.js';
import { fromArray, readTree } from './helpers.js';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const BUCKET = 'documents';

describe.each([
  ['s3rver', startS3],
  ['Ceph RGW', startRgw],
] as const)('s3 source on %s', (_server, start) => {
  let s3: S3Endpoint;
  let client: Client;
  let config: FilesSourceConfig;
  const objects = new Map<string, Buffer>([
    ['a.txt', Buffer.from('dot sorts before slash in bytes')],
    ['a/b', randomBytes(200_000)],
    ['a b', Buffer.from('space')],
    ['a-c/d', Buffer.from('dash')],
    ['deep/er/f', randomBytes(3_000)],
    ['z', Buffer.alloc(0)],
  ]);

  beforeAll(async () => {
    s3 = await start();
    const url = new URL(s3.endpoint);
    client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, pathStyle: true });
    await client.makeBucket(BUCKET, s3.region);
    for (const [key, body] of objects) await client.putObject(BUCKET, `team/docs/${key}`, body, body.length);
    await client.putObject(BUCKET, 'team/docs/folder/', Buffer.alloc(0), 0); // a "folder" marker: not content
    await client.putObject(BUCKET, 'team/other', Buffer.from('outside the prefix'), 18);
    config = { kind: 's3', endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, prefix: '/team/docs/', accessKey: s3.accessKey, secretKey: s3.secretKey };
  });
  afterAll(async () => {
    await s3?.stop();
  });

  function counting(source: FilesSource): FilesSource & { opened: string[] } {
    const opened: string[] = [];
    return { ...source, opened, open: (entry) => (opened.push(entry.path), source.open(entry)) };
  }

  async function backUp(repository: ChunkRepository, parent?: TreeEntry[]): Promise<{ entries: TreeEntry[]; opened: string[]; facts: Awaited<ReturnType<typeof takeSnapshot>['facts']> }> {
    const source = counting(openSource(config));
    const result = takeSnapshot({ source, repository, sessionId: `s3-${randomBytes(4).toString('hex')}`, ...(parent === undefined ? {} : { parentTree: fromArray(parent) }) });
    try {
      const { entries } = await readTree(result.tree, repository);
      return { entries, opened: source.opened, facts: await result.facts };
    } finally {
      await result.close();
      await source.close?.();
    }
  }

  it('lists objects under the prefix in walk order, streams them into the repository, and reads only changed ETags next time', async () => {
    const repository = await openChunkRepository({ backend: createMemoryBackend(), keyRing: keyRingOf({ id: 'k', key: randomBytes(32) }), compression: 'gzip' });
    const first = await backUp(repository);
    expect(first.entries.map((entry) => entry.path)).toEqual(['a/b', 'a b', 'a-c/d', 'a.txt', 'deep/er/f', 'z']);
    for (const entry of first.entries) {
      const body = objects.get(entry.path)!;
      expect(entry).toMatchObject({ type: 'file', size: body.length, sha256: sha256(body), mode: 0o644, etag: expect.stringMatching(/^[0-9a-f]{32}$/) });
      const stored = await Promise.all((entry.chunks ?? []).map((chunk) => repository.readChunk(chunk.id)));
      expect(Buffer.concat(stored).equals(body)).toBe(true);
    }
    expect(first.facts).toMatchObject({ sourceKind: 's3', location: `s3://${BUCKET}/team/docs/`, files: 6, chunkIds: 'hmac-sha256', problemsCount: 0 });
    expect(JSON.stringify(first.facts)).not.toContain(s3.secretKey);

    const changed = randomBytes(5_000);
    await client.putObject(BUCKET, 'team/docs/deep/er/f', changed, changed.length);
    const second = await backUp(repository, first.entries);
    expect(second.opened).toEqual(['deep/er/f']);
    expect(second.facts.unchangedFiles).toBe(5);
    expect(second.entries.find((entry) => entry.path === 'deep/er/f')!.sha256).toBe(sha256(changed));
    objects.set('deep/er/f', changed);
  });

  it('a bucket that does not exist fails the backup with a non-retryable source error', async () => {
    const repository = await openChunkRepository({ backend: createMemoryBackend(), keyRing: keyRingOf(undefined), compression: 'gzip' });
    const source = openSource({ ...config, bucket: 'no-such-bucket' } as FilesSourceConfig);
    const result = takeSnapshot({ source, repository, sessionId: 'missing-bucket' });
    await expect(readTree(result.tree, repository)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: false });
    await result.close();
    await source.close?.();
  });
});
