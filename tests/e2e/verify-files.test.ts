// Here, not in services/verifier/test, because it drives two services (services never import services).
// The verifier on files snapshots made by the files-agent's backup handler, over filesystem
// storage: a documents snapshot passes (restored into <files.workDir>/scratch and compared by an
// independent walk, the scratch directory gone afterwards); a flipped byte in a pack fails it with
// VERIFY_MISMATCH naming the integrity code; an Ollama store with a corrupt blob passes and names
// the model's missing layer.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RequestBackup, type Manifest, type VerificationCheck } from '@tidemark/contracts';
import { filesSourceOf, parseConfig } from '@tidemark/config';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { openSource } from '@tidemark/files';
import { handleBackupRequested as backupUnsettled, treeArtifactId, type AgentDeps } from '@tidemark/files-agent-service';
import { handleArtifactStored as verifyUnsettled, type VerifierDeps } from '@tidemark/verifier-service';
import {
  makeTempDir, recordingPublisher, removeTempDir, settling, storedEvent, testContextFor, writeDocuments, writeOllamaStore, type RecordingPublisher,
} from '@tidemark/testkit';

const backup = settling(backupUnsettled);
const verify = settling(verifyUnsettled);
const keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '55'.repeat(32) });

let root: string;
let store: ArtifactStore;
let publisher: RecordingPublisher;
let agent: AgentDeps;
let verifier: VerifierDeps;

beforeEach(async () => {
  root = await makeTempDir('tidemark-verify-files');
  store = new ArtifactStore(await createBackend({ type: 'fs', root: join(root, 'storage') }));
  publisher = recordingPublisher();
  const config = parseConfig(
    `defaults: { encrypt: true, verify: true, compression: zstd }
files: { workDir: ${join(root, 'work')} }
targets:
  - { name: docs, engine: files, files: { source: { kind: directory, path: ${join(root, 'docs')} } } }
  - { name: models, engine: files, files: { source: { kind: ollama, path: ${join(root, 'models')} } } }
`,
    join(root, 'tidemark.yaml'),
    {},
  );
  agent = {
    config, store, publisher, keys, progress: { publish: () => undefined },
    sourceFor: (target) => openSource(filesSourceOf(target, {})),
    agent: { id: 'files-agent-test', version: '0.1.0' }, clock: () => new Date(),
  };
  verifier = { store, sandbox: undefined, publisher, keys, clock: () => new Date(), filesWorkDir: config.files.workDir, randomSuffix: () => 'abc123' };
});
afterEach(async () => {
  await store.backend.close();
  await removeTempDir(root);
});

async function backedUp(target: 'docs' | 'models'): Promise<Manifest> {
  const ctx = testContextFor(`backup.requested.files.${target}`)();
  expect(await backup(RequestBackup.parse({ requestId: `${target}-1` }), agent, ctx)).toEqual({ type: 'ack' });
  return (await store.readManifest('files', target, treeArtifactId(`${target}-1`, ctx.storedAt)))!;
}

/** The verification's event; a mismatch found by comparing acks, one found by reading (an integrity error) ends the delivery (term) after its report. */
async function verified(manifest: Manifest): Promise<{ subject: string; checks: VerificationCheck[]; error?: { code: string; message: string } }> {
  expect((await verify(storedEvent(manifest), verifier, testContextFor(`artifact.stored.files.${manifest.target}`)())).type).toMatch(/^(ack|term)$/);
  const event = publisher.published.at(-1)!;
  // The scratch directory (and its owner file) is gone whatever the outcome.
  expect(await readdir(join(root, 'work', 'scratch'))).toEqual([]);
  return { subject: event.subject, ...(event.event as { checks: VerificationCheck[]; error?: { code: string; message: string } }) };
}

/** The pack files under the storage root, biggest first. */
async function packs(): Promise<string[]> {
  const found: { path: string; size: number }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.pack')) found.push({ path, size: (await stat(path)).size });
    }
  };
  await walk(join(root, 'storage', 'chunks', 'packs'));
  return found.sort((a, b) => b.size - a.size).map((f) => f.path);
}

describe('the verifier on files snapshots', () => {
  it('passes a documents snapshot restored into scratch space and compared file by file', async () => {
    await writeDocuments(join(root, 'docs'));
    const result = await verified(await backedUp('docs'));
    expect(result.subject).toBe('verify.passed.files.docs');
    const byName = new Map(result.checks.map((c) => [c.name, c]));
    expect(byName.get('restored tree matches the manifest (paths, types, modes, sizes, sha256, link targets)')).toMatchObject({ ok: true, detail: expect.stringMatching(/^\d+ files, \d+ bytes compared$/) });
    expect(result.checks.every((c) => c.ok)).toBe(true);
  });

  it('fails a snapshot whose pack has a flipped byte, naming the integrity code', async () => {
    await writeDocuments(join(root, 'docs'));
    const manifest = await backedUp('docs');
    const [pack] = await packs();
    const bytes = await readFile(pack!);
    const at = Math.floor(bytes.length / 3);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(pack!, bytes);
    const result = await verified(manifest);
    expect(result.subject).toBe('verify.failed.files.docs');
    expect(result.error).toMatchObject({ code: 'VERIFY_MISMATCH', message: expect.stringMatching(/\(INTEGRITY_[A-Z_]+\)/) });
  });

  it('an Ollama snapshot with a blob corrupt at backup passes: the blob was never stored as good, and the missing layer of the model is named', async () => {
    const { weights, model } = await writeOllamaStore(join(root, 'models'), true);
    const result = await verified(await backedUp('models'));
    expect(result.subject).toBe('verify.passed.files.models');
    expect(result.checks.find((c) => c.name === 'ollama models have every layer')).toMatchObject({ ok: true, detail: expect.stringContaining(`model ${model}:latest lacks layer ${weights}`) });
    expect(result.checks.find((c) => c.name === 'problems recorded at backup')?.detail).toContain('digest_mismatch');
  });
});
