import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '@tidemark/testkit';
import { inspectOllamaStore, openSource, takeSnapshot } from '../src/index.js';
import { contentOf, fromArray, memoryRepository, readTree } from './helpers.js';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** An Ollama models directory as Ollama writes it: manifests per model and tag, blobs named by their sha256. */
async function ollamaStore(root: string): Promise<{ goodLayer: Buffer; corruptDigest: string; missingDigest: string; manifest: Buffer; declaredSize: number }> {
  await mkdir(join(root, 'blobs'), { recursive: true });
  const blob = async (content: Buffer): Promise<string> => {
    const digest = `sha256:${sha256(content)}`;
    await writeFile(join(root, 'blobs', digest.replace(':', '-')), content);
    return digest;
  };
  const config = Buffer.from(JSON.stringify({ model_format: 'gguf', model_family: 'llama' }));
  const goodLayer = randomBytes(300_000);
  const template = Buffer.from('{{ .Prompt }}');
  const configDigest = await blob(config);
  const goodDigest = await blob(goodLayer);
  const corruptDigest = await blob(template);
  // Bit rot: the blob's bytes no longer hash to its name.
  await writeFile(join(root, 'blobs', corruptDigest.replace(':', '-')), '{{ .Prompt }}!');
  const missingDigest = `sha256:${'e'.repeat(64)}`;
  const layer = (mediaType: string, digest: string, size: number): object => ({ mediaType, digest, size });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: layer('application/vnd.docker.container.image.v1+json', configDigest, config.length),
      layers: [layer('application/vnd.ollama.image.model', goodDigest, goodLayer.length), layer('application/vnd.ollama.image.template', corruptDigest, template.length)],
    }),
  );
  await mkdir(join(root, 'manifests/registry.ollama.ai/library/tiny'), { recursive: true });
  await writeFile(join(root, 'manifests/registry.ollama.ai/library/tiny/latest'), manifest);
  await mkdir(join(root, 'manifests/registry.ollama.ai/me/partial'), { recursive: true });
  await writeFile(
    join(root, 'manifests/registry.ollama.ai/me/partial/v1'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: layer('x', configDigest, config.length), layers: [layer('m', missingDigest, 7)] }),
  );
  return { goodLayer, corruptDigest, missingDigest, manifest, declaredSize: config.length + goodLayer.length + template.length };
}

describe('ollama source', () => {
  let root: string;
  let store: Awaited<ReturnType<typeof ollamaStore>>;
  beforeAll(async () => {
    root = await makeTempDir('tidemark-ollama');
    store = await ollamaStore(root);
  });
  afterAll(() => removeTempDir(root));

  it('inspectOllamaStore: the inventory from the manifests, corrupt blobs by hash, missing layers', async () => {
    const inspection = await inspectOllamaStore(root, { hashBlobs: true });
    expect(inspection.models).toEqual([
      expect.objectContaining({ name: 'registry.ollama.ai/library/tiny', tag: 'latest', digest: `sha256:${sha256(store.manifest)}`, layers: expect.arrayContaining([store.corruptDigest]) }),
      expect.objectContaining({ name: 'registry.ollama.ai/me/partial', tag: 'v1' }),
    ]);
    expect(inspection.models[0]!.size).toBe(store.declaredSize);
    expect(inspection.blobs).toBe(3);
    expect(inspection.corruptBlobs).toEqual([store.corruptDigest]);
    expect(inspection.missingLayers).toEqual([{ model: 'registry.ollama.ai/me/partial:v1', digest: store.missingDigest }]);
    expect((await inspectOllamaStore(root, { hashBlobs: false })).corruptBlobs).toEqual([]);
  });

  it('a backup reports the corrupted blob (digest_mismatch, no chunks: never stored as good) and records the inventory', async () => {
    const repository = memoryRepository();
    const result = takeSnapshot({ source: openSource({ kind: 'ollama', path: root }), repository, sessionId: 'ollama-1' });
    const { header, entries } = await readTree(result.tree, repository);
    const facts = await result.facts;
    await result.close();
    expect(header.sourceKind).toBe('ollama');
    const byPath = new Map(entries.map((entry) => [entry.path, entry]));
    const corrupt = byPath.get(`blobs/${store.corruptDigest.replace(':', '-')}`)!;
    expect(corrupt).toMatchObject({ type: 'file', problem: 'digest_mismatch' });
    expect(corrupt.chunks).toBeUndefined();
    expect(corrupt.sha256).toBeUndefined();
    const good = byPath.get(`blobs/sha256-${sha256(store.goodLayer)}`)!;
    expect(contentOf(repository, good).equals(store.goodLayer)).toBe(true);
    expect(byPath.get('manifests/registry.ollama.ai/library/tiny/latest')).toMatchObject({ type: 'file', sha256: sha256(store.manifest) });

    expect(facts.sourceKind).toBe('ollama');
    expect(facts.ollama).toEqual({
      models: [expect.objectContaining({ name: 'registry.ollama.ai/library/tiny', tag: 'latest' }), expect.objectContaining({ name: 'registry.ollama.ai/me/partial', tag: 'v1' })],
      blobs: 3,
      corruptBlobs: [store.corruptDigest],
    });
    expect(facts.problems.map(({ path, problem }) => `${problem} ${path}`).sort()).toEqual([
      `digest_mismatch blobs/${store.corruptDigest.replace(':', '-')}`,
      'missing_layer manifests of registry.ollama.ai/me/partial:v1',
    ]);

    // The next backup does not trust the parent for it: the blob is hashed (and reported) again.
    const again = await readTree(takeSnapshot({ source: openSource({ kind: 'ollama', path: root }), repository, sessionId: 'ollama-2', parentTree: fromArray(entries) }).tree, repository);
    expect(again.entries.find((entry) => entry.path === corrupt.path)).toMatchObject({ problem: 'digest_mismatch' });
  });
});
