// Small fixed file trees for the files engine's handler, verifier and end-to-end tests: a
// documents directory with what real trees hold, and an Ollama models directory (a manifest and
// its blobs named by their sha256) whose weights blob can be corrupted.
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A small documents tree: nested files (one of 3 MiB of random bytes: several chunks, incompressible), an empty directory, a symlink, a hard link, a name with a newline. */
export async function writeDocuments(dir: string): Promise<void> {
  await mkdir(join(dir, 'cases/2024'), { recursive: true });
  await mkdir(join(dir, 'empty'), { recursive: true });
  await writeFile(join(dir, 'cases/2024/brief.txt'), 'the brief\n'.repeat(1000));
  await writeFile(join(dir, 'cases/2024/big.bin'), randomBytes(3 * 1024 * 1024));
  await writeFile(join(dir, 'readme.md'), '# documents\n');
  await writeFile(join(dir, 'line\nbreak.txt'), 'a name with a newline');
  await symlink('cases/2024/brief.txt', join(dir, 'latest'));
  await link(join(dir, 'readme.md'), join(dir, 'readme-again.md'));
}

/** An Ollama models directory with one model; `corrupt` flips the content of its weights blob. */
export async function writeOllamaStore(dir: string, corrupt = false): Promise<{ readonly weights: string; readonly model: string }> {
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
  return { weights: `sha256:${digest(weights)}`, model: 'registry.ollama.ai/library/tiny' };
}
