import { randomBytes } from 'node:crypto';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { RestoreRefusedError, restoreToS3, type RestoreToS3Options } from '@tidemark/files';
import { MemoryChunkRepository } from './memory-chunk-repository.js';
import { sha256, TreeBuilder } from './tree-fixture.js';

let s3: S3Endpoint;
let client: Client;
beforeAll(async () => {
  s3 = await startS3();
  const url = new URL(s3.endpoint);
  client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, pathStyle: true });
});
afterAll(async () => {
  await s3?.stop();
});

const connection = (): Pick<RestoreToS3Options, 'endpoint' | 'accessKey' | 'secretKey' | 'region'> => ({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region });

async function objects(bucket: string, prefix: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const item of client.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name: string }>) {
    const chunks: Buffer[] = [];
    for await (const piece of await client.getObject(bucket, item.name)) chunks.push(piece as Buffer);
    found.set(item.name, sha256(Buffer.concat(chunks)));
  }
  return found;
}

describe('restoreToS3', () => {
  it('writes every file as an object under the prefix; directories and symlinks are skipped, hard links get the content', async () => {
    const repository = new MemoryChunkRepository();
    const big = randomBytes(300_000);
    const builder = new TreeBuilder(repository, 64 * 1024)
      .dir('docs')
      .file('docs/big.bin', big)
      .file('docs/empty', '')
      .file('docs/with space and\nnewline.txt', 'odd name')
      .zeros('docs/zeros', 9 * 1024 * 1024)
      .hardlink('docs/link', 'docs/big.bin')
      .symlink('docs/sym', 'big.bin')
      .file('other/x', 'x');
    const progress: number[] = [];
    const summary = await restoreToS3({ ...connection(), tree: builder.tree(), repository, bucket: 'restored', prefix: 'docs-2024', onProgress: (p) => progress.push(p.filesDone) });
    expect(summary).toMatchObject({ files: 6, refused: [], bytes: 300_000 * 2 + 8 + 9 * 1024 * 1024 + 1 });
    expect(summary.skipped?.map(({ path }) => path)).toEqual(['docs', 'docs/sym']);
    expect(progress.at(-1)).toBe(6);
    expect(await objects('restored', 'docs-2024/')).toEqual(
      new Map([
        ['docs-2024/docs/big.bin', sha256(big)],
        ['docs-2024/docs/empty', sha256(Buffer.alloc(0))],
        ['docs-2024/docs/link', sha256(big)],
        ['docs-2024/docs/with space and\nnewline.txt', sha256(Buffer.from('odd name'))],
        ['docs-2024/docs/zeros', sha256(Buffer.alloc(9 * 1024 * 1024))],
        ['docs-2024/other/x', sha256(Buffer.from('x'))],
      ]),
    );

    await expect(restoreToS3({ ...connection(), tree: builder.tree(), repository, bucket: 'restored', prefix: 'docs-2024/' })).rejects.toMatchObject({ code: 'RESTORE_TARGET_EXISTS' });
    const again = await restoreToS3({ ...connection(), tree: builder.tree(), repository, bucket: 'restored', prefix: 'docs-2024/', overwrite: true, paths: ['other'] });
    expect(again).toMatchObject({ files: 1 });
  });

  it('restores chosen paths, a link whose first path is not chosen included, and refuses what cannot be a key', async () => {
    const repository = new MemoryChunkRepository();
    const builder = new TreeBuilder(repository)
      .file('a/first', 'shared')
      .hardlink('b/link', 'a/first')
      .file(Buffer.concat([Buffer.from('b/bad-'), Buffer.of(0xff)]), 'not UTF-8')
      .file('b/good', 'good');
    const failure = await restoreToS3({ ...connection(), tree: builder.tree(), repository, bucket: 'chosen', prefix: '', paths: ['b'] }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RestoreRefusedError);
    expect((failure as RestoreRefusedError).summary.refused).toEqual([{ path: 'b/bad-\uFFFD', reason: 'the name is not valid UTF-8, which an S3 key must be' }]);
    expect([...(await objects('chosen', '')).keys()]).toEqual(['b/good', 'b/link']);
  });
});
