// A files-agent over in-memory storage, its sources (a directory and an Ollama store) in a temp
// dir, a recording publisher and progress publisher, and the handler contexts.
import { join } from 'node:path';
import { filesSourceOf, parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import type { CorePublisher } from '@tidemark/runtime';
import { openSource } from '@tidemark/files';
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
