// A files-agent over in-memory storage: a directory and an Ollama store in a temp dir as sources,
// a recording publisher and progress publisher, and the handler contexts.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import type { CorePublisher } from '@tidemark/runtime';
import { openSource } from '@tidemark/files';
import { filesSourceOf } from '@tidemark/config';
import { recordingPublisher, testContextFor } from '@tidemark/testkit';
import type { AgentDeps } from '../src/agent-deps.js';

export const TEST_KEY_HEX = '22'.repeat(32);
export const backupContext = testContextFor('backup.requested.files.docs');
export const restoreContext = testContextFor('restore.requested.files.docs');

export function recordingProgress(): CorePublisher & { readonly sent: { subject: string; message: Record<string, unknown> }[] } {
  const sent: { subject: string; message: Record<string, unknown> }[] = [];
  return { sent, publish: (subject, schema, message) => void sent.push({ subject, message: schema.parse(message) as Record<string, unknown> }) };
}

export function agentOf(root: string, options: { encrypt?: boolean } = {}) {
  const config = parseConfig(
    `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: ${options.encrypt ?? true}, verify: true, compression: gzip }
files: { workDir: ${join(root, 'work')} }
targets:
  - name: docs
    engine: files
    files: { source: { kind: directory, path: ${join(root, 'docs')} } }
  - name: models
    engine: files
    files: { source: { kind: ollama, path: ${join(root, 'models')} } }
`,
    join(root, 'tidemark.yaml'),
    {},
  );
  const publisher = recordingPublisher();
  const progress = recordingProgress();
  const store = new ArtifactStore(createMemoryBackend());
  const deps: AgentDeps = {
    config, store, publisher, progress, progressIntervalMs: 0,
    sourceFor: (target) => openSource(filesSourceOf(target, {})),
    keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
    agent: { id: 'files-agent-1', version: '0.1.0' },
    clock: () => new Date(),
  };
  return { deps, publisher, progress, store };
}

/** A small documents tree: nested files, an empty directory, a symlink, a hard link, a name with a newline. */
export async function writeDocuments(dir: string): Promise<void> {
  await mkdir(join(dir, 'cases/2024'), { recursive: true });
  await mkdir(join(dir, 'empty'), { recursive: true });
  await writeFile(join(dir, 'cases/2024/brief.txt'), 'the brief\n'.repeat(1000));
  await writeFile(join(dir, 'cases/2024/big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
  await writeFile(join(dir, 'readme.md'), '# documents\n');
  await writeFile(join(dir, 'line\nbreak.txt'), 'a name with a newline');
  const { symlink, link } = await import('node:fs/promises');
  await symlink('cases/2024/brief.txt', join(dir, 'latest'));
  await link(join(dir, 'readme.md'), join(dir, 'readme-again.md'));
}

/** An Ollama models directory with one model; `corrupt` flips the content of its weights blob. */
export async function writeOllamaStore(dir: string, corrupt = false): Promise<{ weights: string }> {
  const weights = Buffer.alloc(300_000, 3);
  const config = Buffer.from('{"model_format":"gguf"}');
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  await mkdir(join(dir, 'blobs'), { recursive: true });
  await mkdir(join(dir, 'manifests/registry.ollama.ai/library/tiny'), { recursive: true });
  await writeFile(join(dir, 'blobs', `sha256-${digest(weights)}`), corrupt ? Buffer.alloc(weights.length, 4) : weights);
  await writeFile(join(dir, 'blobs', `sha256-${digest(config)}`), config);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: `sha256:${digest(config)}`, size: config.length },
    layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest(weights)}`, size: weights.length }],
  };
  await writeFile(join(dir, 'manifests/registry.ollama.ai/library/tiny/latest'), JSON.stringify(manifest));
  return { weights: `sha256:${digest(weights)}` };
}
