// An Ollama models directory: manifests/<registry>/<namespace>/<model>/<tag> (JSON naming a
// config and layers by digest) and blobs/sha256-<hex> (content named by its own sha256). It is
// backed up as a directory; the manifests give the inventory, and each blob's name is the digest
// its content must have, so a corrupted blob is reported rather than stored as good.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { OllamaModel } from '@tidemark/contracts';
import { sha256OfStream } from '@tidemark/pipeline';
import { openDirectorySource } from './directory.js';
import type { FilesSource, OllamaInspection } from './source.js';

const BLOB_PATH = /^blobs\/sha256-([0-9a-f]{64})$/;
const BLOB_NAME = /^sha256-([0-9a-f]{64})$/;
const DIGEST = /^sha256:([0-9a-f]{64})$/;

export function openOllamaSource(path: string): FilesSource {
  const directory = openDirectorySource({ path }, 'ollama');
  return {
    ...directory,
    expectedSha256: (entry) => (entry.type === 'file' ? BLOB_PATH.exec(entry.path)?.[1] : undefined),
    inventory: () => inspectOllamaStore(path, { hashBlobs: false }),
  };
}

/** Reads an Ollama models directory: inventory from manifests, and (with `hashBlobs`) every blob checked against its name. */
export async function inspectOllamaStore(path: string, options: { hashBlobs: boolean }): Promise<OllamaInspection> {
  const root = resolve(path);
  const blobNames = await readdir(join(root, 'blobs')).catch(emptyWhenMissing);
  const blobDigests = new Set<string>();
  const corruptBlobs: string[] = [];
  for (const name of blobNames.sort()) {
    const hex = BLOB_NAME.exec(name)?.[1];
    if (hex === undefined) continue;
    blobDigests.add(hex);
    if (options.hashBlobs && (await sha256OfStream(createReadStream(join(root, 'blobs', name)))).sha256 !== hex) corruptBlobs.push(`sha256:${hex}`);
  }
  const models: OllamaModel[] = [];
  const missingLayers: { model: string; digest: string }[] = [];
  const badManifests: { path: string; detail: string }[] = [];
  for (const manifest of await manifestPaths(join(root, 'manifests'))) {
    const relative = `manifests/${manifest.join('/')}`;
    const tag = manifest.at(-1) ?? '';
    const name = manifest.slice(0, -1).join('/');
    let bytes: Buffer;
    let layers: { digest: string; size: number }[];
    try {
      bytes = await readFile(join(root, 'manifests', ...manifest));
      layers = layersOf(JSON.parse(bytes.toString('utf8')) as unknown);
    } catch (error) {
      badManifests.push({ path: relative, detail: error instanceof Error ? error.message : String(error) });
      continue;
    }
    const model = `${name}:${tag}`;
    for (const layer of layers) {
      const hex = DIGEST.exec(layer.digest)?.[1];
      if (hex === undefined || !blobDigests.has(hex)) missingLayers.push({ model, digest: layer.digest });
    }
    models.push({
      name,
      tag,
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      size: layers.reduce((sum, layer) => sum + layer.size, 0),
      layers: layers.map((layer) => layer.digest),
    });
  }
  return { models, blobs: blobDigests.size, corruptBlobs, missingLayers, badManifests };
}

/** The config and the layers a manifest names (Ollama's format: schemaVersion 2, config, layers). */
function layersOf(manifest: unknown): { digest: string; size: number }[] {
  const { config, layers } = (manifest ?? {}) as { config?: unknown; layers?: unknown };
  if (!Array.isArray(layers)) throw new Error('the manifest has no layers array');
  return [...(config === undefined ? [] : [config]), ...(layers as unknown[])].map((layer, index) => {
    const { digest, size } = (layer ?? {}) as { digest?: unknown; size?: unknown };
    if (typeof digest !== 'string' || typeof size !== 'number' || !Number.isFinite(size) || size < 0) throw new Error(`layer ${index} lacks a digest or a size`);
    return { digest, size };
  });
}

/** Every manifest file under `directory`, as path segments, sorted. */
async function manifestPaths(directory: string, prefix: string[] = []): Promise<string[][]> {
  const entries = await readdir(join(directory, ...prefix), { withFileTypes: true }).catch(emptyWhenMissing);
  const found: string[][] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (entry.isDirectory()) found.push(...(await manifestPaths(directory, [...prefix, entry.name])));
    else if (entry.isFile()) found.push([...prefix, entry.name]);
  }
  return found;
}

function emptyWhenMissing(error: unknown): never[] {
  if ((error as { code?: unknown }).code === 'ENOENT') return [];
  throw error;
}
