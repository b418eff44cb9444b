// An s3 source on a real S3 server (s3rver): objects under a prefix backed up, restored under a
// new prefix of the same bucket by default, or into another bucket and prefix; an occupied prefix
// is refused without overwrite.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'minio';
import { RequestBackup, RequestRestore } from '@tidemark/contracts';
import { filesSourceOf, parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { openSource } from '@tidemark/files';
import { recordingPublisher, settling, startS3, testContextFor, type S3Endpoint } from '@tidemark/testkit';
import { handleBackupRequested, handleRestoreRequested, treeArtifactId, type AgentDeps } from '../src/index.js';
import { TEST_KEY_HEX, recordingProgress } from './fakes.js';

const backup = settling(handleBackupRequested);
const restore = settling(handleRestoreRequested);
const SOURCE_BUCKET = 'documents';
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let s3: S3Endpoint;
let client: Client;
let deps: AgentDeps;
const publisher = recordingPublisher();

async function objects(bucket: string, prefix: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const item of client.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name: string }>) {
    const parts: Buffer[] = [];
    for await (const part of await client.getObject(bucket, item.name)) parts.push(part as Buffer);
    found.set(item.name.slice(prefix.length), sha(Buffer.concat(parts)));
  }
  return found;
}

beforeAll(async () => {
  s3 = await startS3();
  const url = new URL(s3.endpoint);
  client = new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, pathStyle: true });
  await client.makeBucket(SOURCE_BUCKET, s3.region);
  await client.makeBucket('copies', s3.region);
  await client.putObject(SOURCE_BUCKET, 'cases/2024/brief.txt', Buffer.from('the brief\n'.repeat(500)));
  await client.putObject(SOURCE_BUCKET, 'cases/2024/scan.bin', Buffer.alloc(700_000, 9));
  await client.putObject(SOURCE_BUCKET, 'cases/readme.md', Buffer.from('# cases\n'));
  await client.putObject(SOURCE_BUCKET, 'other/outside.txt', Buffer.from('not under the prefix'));
  const env = { DOCS_ACCESS_KEY: s3.accessKey, DOCS_SECRET_KEY: s3.secretKey };
  // The restore reads the credentials the way main.ts's sources do: from the variables the config names.
  Object.assign(process.env, env);
  const config = parseConfig(`
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - name: docs
    engine: files
    files: { source: { kind: s3, endpoint: "${s3.endpoint}", region: ${s3.region}, bucket: ${SOURCE_BUCKET}, prefix: cases/, accessKeyEnv: DOCS_ACCESS_KEY, secretKeyEnv: DOCS_SECRET_KEY } }
`, '/tmp/tidemark.yaml', {});
  deps = {
    config, publisher, progress: recordingProgress(), store: new ArtifactStore(createMemoryBackend()),
    sourceFor: (target) => openSource(filesSourceOf(target, env)),
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }), agent: { id: 'files-agent-s3', version: '0.1.0' }, clock: () => new Date(),
  };
}, 60_000);

afterAll(async () => {
  await s3?.stop();
});

describe('files-agent with an s3 source', () => {
  it('backs up the objects under the prefix and restores them under a new prefix, or into another bucket', async () => {
    const ctx = testContextFor('backup.requested.files.docs')();
    expect(await backup(RequestBackup.parse({ requestId: 's3-1' }), deps, ctx)).toEqual({ type: 'ack' });
    const artifactId = treeArtifactId('s3-1', ctx.storedAt);
    const original = await objects(SOURCE_BUCKET, 'cases/');
    expect([...original.keys()].sort()).toEqual(['2024/brief.txt', '2024/scan.bin', 'readme.md']);

    const restoreCtx = testContextFor('restore.requested.files.docs');
    expect(await restore(RequestRestore.parse({ requestId: 's3-r1' }), deps, restoreCtx())).toEqual({ type: 'ack' });
    expect(publisher.published.at(-1)?.event).toMatchObject({ database: `s3://${SOURCE_BUCKET}/cases-restore-${artifactId}/`, files: { files: 3 } });
    expect(await objects(SOURCE_BUCKET, `cases-restore-${artifactId}/`)).toEqual(original);

    expect(await restore(RequestRestore.parse({ requestId: 's3-r2', intoBucket: 'copies', intoPrefix: 'copy', paths: ['2024'] }), deps, restoreCtx())).toEqual({ type: 'ack' });
    expect(await objects('copies', 'copy/')).toEqual(new Map([...original].filter(([key]) => key.startsWith('2024/'))));

    expect(await restore(RequestRestore.parse({ requestId: 's3-r3', intoBucket: 'copies', intoPrefix: 'copy/' }), deps, restoreCtx())).toMatchObject({ type: 'term' });
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.files.docs', event: { error: { code: 'RESTORE_TARGET_EXISTS' } } });
    expect(await restore(RequestRestore.parse({ requestId: 's3-r4', intoDirectory: '/tmp/x' }), deps, restoreCtx())).toMatchObject({ type: 'term' });
    expect(publisher.published.at(-1)?.event).toMatchObject({ error: { code: 'COMMAND_INVALID', message: expect.stringContaining('intoBucket') } });
  });
});
