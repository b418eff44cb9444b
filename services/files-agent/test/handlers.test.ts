import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RequestBackup, RequestRestore, type FilesSourceFacts } from '@tidemark/contracts';
import { TREE_FORMAT, compareDirectoryWithTree } from '@tidemark/files';
import { committedTree } from '@tidemark/agent';
import { makeTempDir, removeTempDir, settling, writeDocuments, writeOllamaStore } from '@tidemark/testkit';
import { handleBackupRequested as backupUnsettled, handleRestoreRequested as restoreUnsettled, treeArtifactId } from '../src/index.js';
import { agentOf, backupContext, restoreContext } from './fakes.js';

const backup = settling(backupUnsettled);
const restore = settling(restoreUnsettled);
const facts = (source: unknown) => source as FilesSourceFacts;

let root: string;
beforeEach(async () => {
  root = await makeTempDir('tidemark-files-agent');
  await writeDocuments(join(root, 'docs'));
});
afterEach(async () => {
  await removeTempDir(root);
});

describe('backup.requested.files', () => {
  it('commits a tree snapshot, announces it, reports progress, and a second backup reads only what changed', async () => {
    const { deps, publisher, progress, store } = agentOf(root);
    const first = backupContext();
    expect(await backup(RequestBackup.parse({ requestId: 'b1' }), deps, first)).toEqual({ type: 'ack' });
    const firstId = treeArtifactId('b1', first.storedAt);
    const manifest = (await store.readManifest('files', 'docs', firstId))!;
    expect(manifest).toMatchObject({ engine: 'files', kind: 'tree', format: TREE_FORMAT, verify: true });
    expect(manifest.pipeline.encryption).not.toBeNull();
    expect(facts(manifest.source)).toMatchObject({ sourceKind: 'directory', files: 4, hardLinks: 1, symlinks: 1, chunkIds: 'hmac-sha256', problemsCount: 0 });
    expect(publisher.subjects()).toEqual(['backup.started.files.docs', 'artifact.stored.files.docs', 'backup.completed.files.docs']);
    expect(publisher.published[2]?.event).toMatchObject({ artifactId: firstId, kind: 'tree', problemsCount: 0 });
    expect(progress.sent.length).toBeGreaterThan(0);
    expect(progress.sent.every((p) => p.subject === 'progress.backup.files.docs')).toBe(true);
    expect(first.progressCalls).toBeGreaterThan(0);

    await appendFile(join(root, 'docs/readme.md'), 'one more line\n');
    const second = backupContext({ storedAt: new Date('2025-01-03T00:00:00Z') });
    expect(await backup(RequestBackup.parse({ requestId: 'b2' }), deps, second)).toEqual({ type: 'ack' });
    const next = (await store.readManifest('files', 'docs', treeArtifactId('b2', second.storedAt)))!;
    expect(next.parentId).toBe(firstId);
    expect(facts(next.source).unchangedFiles).toBeGreaterThanOrEqual(2);
    expect(facts(next.source).newBytes).toBeLessThan(1000);
    // The second backup estimates its totals from the first.
    expect(progress.sent.at(-1)?.message).toMatchObject({ filesTotal: 4, requestId: 'b2' });
  });

  it('announces a redelivered, already committed snapshot again instead of taking another', async () => {
    const { deps, publisher, store } = agentOf(root);
    const ctx = backupContext();
    await backup(RequestBackup.parse({ requestId: 'again' }), deps, ctx);
    await backup(RequestBackup.parse({ requestId: 'again' }), deps, backupContext({ attempt: 2 }));
    expect(await store.listManifests({ engine: 'files' })).toHaveLength(1);
    expect(publisher.subjects().filter((s) => s.startsWith('backup.started'))).toHaveLength(1);
    expect(publisher.published.filter((p) => p.subject.startsWith('artifact.stored')).map((p) => p.msgId)).toEqual([
      `stored:${treeArtifactId('again', ctx.storedAt)}`, `stored:${treeArtifactId('again', ctx.storedAt)}`,
    ]);
  });

  it('rejects another kind and an unknown target', async () => {
    const { deps } = agentOf(root);
    expect(await backup(RequestBackup.parse({ kind: 'logical' }), deps, backupContext())).toMatchObject({ type: 'reject', error: { code: 'COMMAND_INVALID', message: expect.stringContaining('"tree"') } });
    expect(await backup(RequestBackup.parse({}), deps, backupContext({ subject: 'backup.requested.files.nope' }))).toMatchObject({ type: 'reject', error: { code: 'TARGET_UNKNOWN' } });
  });

  it('an Ollama store with a corrupt blob completes with the problem named, never storing the blob as good', async () => {
    const { weights } = await writeOllamaStore(join(root, 'models'), true);
    const { deps, publisher, store } = agentOf(root);
    const ctx = backupContext({ subject: 'backup.requested.files.models' });
    expect(await backup(RequestBackup.parse({ requestId: 'm1' }), deps, ctx)).toEqual({ type: 'ack' });
    const completed = publisher.published.find((p) => p.subject === 'backup.completed.files.models')!.event;
    expect(completed).toMatchObject({ problemsCount: 1, problems: [{ path: `blobs/sha256-${weights.slice(7)}`, problem: 'digest_mismatch' }] });
    const manifest = (await store.readManifest('files', 'models', treeArtifactId('m1', ctx.storedAt)))!;
    expect(facts(manifest.source).ollama).toMatchObject({ models: [{ name: expect.stringContaining('tiny') }], corruptBlobs: [weights] });
  });
});

describe('restore.requested.files', () => {
  async function backedUp(options: { encrypt?: boolean } = {}) {
    const agent = agentOf(root, options);
    const ctx = backupContext();
    await backup(RequestBackup.parse({ requestId: 'b1' }), agent.deps, ctx);
    const manifest = (await agent.store.readManifest('files', 'docs', treeArtifactId('b1', ctx.storedAt)))!;
    agent.publisher.published.length = 0;
    return { ...agent, manifest };
  }

  it('restores the whole snapshot into a new directory under files.workDir, identical by an independent walk', async () => {
    const { deps, publisher, store, manifest } = await backedUp({ encrypt: false });
    expect(await restore(RequestRestore.parse({ requestId: 'r1' }), deps, restoreContext())).toEqual({ type: 'ack' });
    const into = join(root, 'work', 'restores', `docs-${manifest.id}`);
    expect(publisher.subjects()).toEqual(['restore.started.files.docs', 'restore.completed.files.docs']);
    expect(publisher.published[1]?.event).toMatchObject({ artifactId: manifest.id, database: into, files: { files: 4, symlinks: 1 } });
    const comparison = await compareDirectoryWithTree(into, committedTree(store, manifest, deps.keys));
    expect(comparison.differences).toEqual([]);
    expect(comparison.ok).toBe(true);
  });

  it('restores chosen paths into the named directory, and refuses an existing non-empty one without overwrite', async () => {
    const { deps, publisher } = await backedUp();
    const into = join(root, 'chosen');
    expect(await restore(RequestRestore.parse({ requestId: 'r2', paths: ['cases/2024'], intoDirectory: into }), deps, restoreContext())).toEqual({ type: 'ack' });
    expect(await readdir(join(into, 'cases/2024'))).toEqual(['big.bin', 'brief.txt']);
    expect(await readdir(into)).toEqual(['cases']);

    await mkdir(join(root, 'busy'));
    await writeFile(join(root, 'busy', 'keep.txt'), 'mine');
    expect(await restore(RequestRestore.parse({ requestId: 'r3', intoDirectory: join(root, 'busy') }), deps, restoreContext())).toMatchObject({ type: 'term' });
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.files.docs', event: { error: { code: 'RESTORE_TARGET_EXISTS', retryable: false } } });
    expect(await readdir(join(root, 'busy'))).toEqual(['keep.txt']);
  });

  it('a redelivered restore that already finished is announced again, not refused', async () => {
    const { deps, publisher } = await backedUp();
    const command = RequestRestore.parse({ requestId: 'r-twice', paths: ['cases'], intoDirectory: join(root, 'twice') });
    expect(await restore(command, deps, restoreContext())).toEqual({ type: 'ack' });
    expect(await restore(command, deps, restoreContext({ attempt: 2 }))).toEqual({ type: 'ack' });
    const completed = publisher.published.filter((p) => p.subject === 'restore.completed.files.docs');
    expect(completed.map((p) => p.msgId)).toEqual(['restore-completed:r-twice', 'restore-completed:r-twice']);
    expect(completed[1]?.event).toMatchObject({ files: completed[0]?.event.files });
    await writeFile(join(root, 'twice', 'cases', 'stranger.txt'), 'not from the snapshot');
    expect(await restore(command, deps, restoreContext({ attempt: 3 }))).toMatchObject({ type: 'term' });
    expect(publisher.published.at(-1)).toMatchObject({ subject: 'restore.failed.files.docs', event: { error: { code: 'RESTORE_TARGET_EXISTS' } } });
  });

  it('names bad paths and destinations with non-retryable errors, never INTERNAL', async () => {
    const { deps, publisher } = await backedUp();
    const failure = async (fields: Record<string, unknown>) => {
      publisher.published.length = 0;
      expect(await restore(RequestRestore.parse({ requestId: 'bad', ...fields }), deps, restoreContext())).toMatchObject({ type: 'term' });
      return publisher.published.at(-1)!.event.error as { code: string; message: string; retryable: boolean };
    };
    expect(await failure({ paths: ['cases/../../etc'] })).toMatchObject({ code: 'COMMAND_INVALID', message: expect.stringContaining('paths[0]'), retryable: false });
    expect(await failure({ paths: ['/etc'] })).toMatchObject({ code: 'COMMAND_INVALID', message: expect.stringContaining('absolute') });
    expect(await failure({ paths: ['cases/2023', 'readme.md'] })).toMatchObject({ code: 'COMMAND_INVALID', message: expect.stringContaining('"cases/2023" is not in snapshot') });
    expect(await failure({ intoBucket: 'other-bucket' })).toMatchObject({ code: 'COMMAND_INVALID', message: expect.stringContaining('intoDirectory') });
    expect(await failure({ artifactId: '20200101T000000Z-0123456789' })).toMatchObject({ code: 'ARTIFACT_NOT_FOUND' });
  });
});
