// Files end to end: every service a real process, NATS and filesystem storage real, the sources
// real directories (a documents tree, an Ollama models store). Backups are proven by the verifier,
// restores compared with the snapshot by an independent walk; a flipped byte in a pack and a
// corrupt model blob are found and alerted on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { decode, type FilesSourceFacts, type Manifest } from '@tidemark/contracts';
import { ArtifactStore } from '@tidemark/storage';
import { keyRingFromConfig } from '@tidemark/pipeline';
import { loadConfig } from '@tidemark/config';
import { compareDirectoryWithTree } from '@tidemark/files';
import { committedTree } from '@tidemark/agent';
import { makeTempDir, removeTempDir, writeDocuments, writeOllamaStore } from '@tidemark/testkit';
import { Stack } from './stack.js';

type Failure = { code: string; message: string; retryable: boolean };

/** Every progress report on `subject` while the test runs. */
function collectProgress(nc: NatsConnection, subject: string): Record<string, unknown>[] {
  const seen: Record<string, unknown>[] = [];
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const msg of sub) seen.push(decode(msg.data, msg.headers) as Record<string, unknown>);
  })();
  return seen;
}

describe('files backups end to end', () => {
  let stack: Stack;
  let sources: string;
  let store: ArtifactStore;
  const docs = () => join(sources, 'docs');
  const publish = (subject: string, body: unknown) => stack.nc.publish(subject, new TextEncoder().encode(JSON.stringify(body)));
  const keys = () => keyRingFromConfig(loadConfig(stack.env).config, stack.env);
  const manifestOf = async (target: string, artifactId: string) => (await store.readManifest('files', target, artifactId))!;
  const factsOf = (manifest: Manifest) => manifest.source as unknown as FilesSourceFacts;
  const backedUp = async (target: string, requestId: string) => {
    publish(`backup.requested.files.${target}`, { requestId });
    const stored = await stack.waitFor(`artifact.stored.files.${target}`, (e) => e.data.requestId === requestId, 120_000);
    return manifestOf(target, stored.data.artifactId as string);
  };

  beforeAll(async () => {
    sources = await makeTempDir('tidemark-files-e2e');
    await writeDocuments(docs());
    await writeOllamaStore(join(sources, 'models'), true);
    stack = await Stack.start({
      storage: 'fs', encrypt: true,
      files: [{ name: 'docs', source: { kind: 'directory', path: docs() } }, { name: 'models', source: { kind: 'ollama', path: join(sources, 'models') } }],
    });
    store = new ArtifactStore(await stack.openBackend());
    await stack.startServices(['files-agent', 'verifier', 'alerter', 'storage']);
  });

  afterAll(async () => {
    await stack?.stop();
    if (sources) await removeTempDir(sources);
  });

  it('a snapshot is stored, reported with progress, and proven by the verifier; a second one stores only what changed', async () => {
    const progress = collectProgress(stack.nc, 'progress.backup.files.docs');
    const first = await backedUp('docs', 'f-1');
    await stack.waitFor('verify.passed.files.docs', (e) => e.data.artifactId === first.id, 120_000);
    const completed = await stack.waitFor('backup.completed.files.docs', (e) => e.data.artifactId === first.id);
    expect(completed.data.problemsCount).toBe(0);
    expect(first).toMatchObject({ kind: 'tree', format: 'tidemark-tree-v1' });
    expect(factsOf(first)).toMatchObject({ files: 4, symlinks: 1, hardLinks: 1, chunkIds: 'hmac-sha256' });
    expect(progress.at(-1)).toMatchObject({ action: 'backup', engine: 'files', target: 'docs', requestId: 'f-1', filesDone: expect.any(Number) });

    await appendFile(join(docs(), 'readme.md'), 'changed\n');
    const second = await backedUp('docs', 'f-2');
    await stack.waitFor('verify.passed.files.docs', (e) => e.data.artifactId === second.id, 120_000);
    expect(second.parentId).toBe(first.id);
    expect(factsOf(second).unchangedFiles).toBeGreaterThanOrEqual(2);
    expect(factsOf(second).newBytes).toBeLessThan(64 * 1024);
    expect(factsOf(second).newStoredBytes).toBeLessThan(factsOf(first).newStoredBytes);
  });

  it('restores chosen paths into a new directory, identical to the snapshot by an independent walk', async () => {
    const into = join(stack.dir, 'restored-cases');
    publish('restore.requested.files.docs', { requestId: 'f-restore', paths: ['cases', 'line\nbreak.txt'], intoDirectory: into });
    const done = await stack.waitFor('restore.completed.files.docs', (e) => e.data.requestId === 'f-restore', 120_000);
    expect(done.data).toMatchObject({ database: into, files: { files: 3 } });
    const manifest = await manifestOf('docs', done.data.artifactId as string);
    const comparison = await compareDirectoryWithTree(into, committedTree(store, manifest, keys()), { paths: ['cases', 'line\nbreak.txt'] });
    expect(comparison.differences).toEqual([]);
    expect(comparison.ok).toBe(true);
    expect((await readdir(into)).sort()).toEqual(['cases', 'line\nbreak.txt']);
  });

  it('refuses to restore into an existing non-empty directory without overwrite', async () => {
    const busy = join(stack.dir, 'busy');
    await mkdir(busy);
    await writeFile(join(busy, 'mine.txt'), 'keep me');
    publish('restore.requested.files.docs', { requestId: 'f-busy', intoDirectory: busy });
    const failed = await stack.waitFor('restore.failed.files.docs', (e) => e.data.requestId === 'f-busy', 60_000);
    expect(failed.data.error as Failure).toMatchObject({ code: 'RESTORE_TARGET_EXISTS', retryable: false });
    expect(await readdir(busy)).toEqual(['mine.txt']);
  });

  it('a flipped byte in a pack fails the verification of the snapshot whose chunks it holds, and pages', async () => {
    const verifier = stack.processes.find((p) => p.name === 'verifier' && p.child.exitCode === null);
    await verifier?.kill('SIGTERM');
    const packsBefore = new Set(await packFiles(stack.storageRoot));
    await writeFile(join(docs(), 'fresh.bin'), randomBytes(2 * 1024 * 1024));
    const third = await backedUp('docs', 'f-3');
    const newPacks = (await packFiles(stack.storageRoot)).filter((p) => !packsBefore.has(p));
    expect(newPacks.length).toBeGreaterThan(0);
    const bytes = await readFile(newPacks[0]!);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(newPacks[0]!, bytes);
    await stack.startService('verifier');
    const failed = await stack.waitFor('verify.failed.files.docs', (e) => e.data.artifactId === third.id, 120_000);
    expect(failed.data.error as Failure).toMatchObject({ code: 'VERIFY_MISMATCH', message: expect.stringMatching(/INTEGRITY_/) });
    await stack.waitFor('alert.critical.verify_failed', (e) => e.data.artifactId === third.id);
  });

  it('an Ollama store with a corrupt blob: backup.completed names it, a warning is raised, and the verifier reports the missing layer', async () => {
    const models = await backedUp('models', 'm-1');
    const completed = await stack.waitFor('backup.completed.files.models', (e) => e.data.artifactId === models.id);
    expect(completed.data.problemsCount).toBe(1);
    expect(completed.data.problems).toEqual([expect.objectContaining({ path: expect.stringMatching(/^blobs\/sha256-/), problem: 'digest_mismatch' })]);
    const alert = await stack.waitFor('alert.warning.backup_incomplete', (e) => e.data.artifactId === models.id);
    expect(alert.data.summary).toMatch(/files\/models.*"blobs\/sha256-[0-9a-f]{64}" \(digest mismatch/);
    const passed = await stack.waitFor('verify.passed.files.models', (e) => e.data.artifactId === models.id, 120_000);
    const layers = (passed.data.checks as { name: string; ok: boolean; detail?: string }[]).find((c) => c.name === 'ollama models have every layer');
    expect(layers?.detail).toMatch(/model registry\.ollama\.ai\/library\/tiny:latest lacks layer sha256:[0-9a-f]{64}/);
  });
});

/** The pack files under the filesystem store's root. */
async function packFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.pack')) found.push(path);
    }
  };
  await walk(join(root, 'chunks', 'packs'));
  return found;
}
