// The compose deployment encrypts by default: its config turns encryption on with a key file, the
// keygen service creates that key once (never replacing one), and every service that reads the
// key ring has the key's volume and starts only after keygen is done.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '@tidemark/config';

const repo = new URL('../../', import.meta.url).pathname;
const compose = parse(readFileSync(join(repo, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, { command?: string[]; volumes?: string[]; depends_on?: Record<string, { condition: string }> }>;
  volumes: Record<string, unknown>;
};
// The services whose main.ts builds a key ring (keyRingFromConfig).
const keyReaders = ['pg-agent', 'qdrant-agent', 'files-agent', 'storage', 'verifier'];

describe('docker compose encryption', () => {
  const { config } = loadConfig({ TIDEMARK_CONFIG: join(repo, 'config/compose/tidemark.yaml') });
  const keyFile = config.encryption?.keyFile ?? '';
  const keyDir = dirname(keyFile);
  const scratch = mkdtempSync(join(tmpdir(), 'tidemark-keygen-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('encrypts by default, with a key file', () => {
    expect(config.defaults.encrypt).toBe(true);
    expect(keyFile).toMatch(/^\//);
  });

  it('mounts the key for every service that reads it, after keygen has run', () => {
    const keyVolume = compose.services['keygen']?.volumes?.find((v) => v.endsWith(`:${keyDir}`))?.split(':')[0];
    expect(keyVolume, `keygen mounts a volume at ${keyDir}`).toBeDefined();
    for (const name of keyReaders) {
      const service = compose.services[name]!;
      expect(service.volumes, name).toContain(`${keyVolume}:${keyDir}:ro`);
      expect(service.depends_on?.['keygen']?.condition, name).toBe('service_completed_successfully');
    }
  });

  it("keygen's command writes a 32-byte hex key once and never replaces it", () => {
    const command = compose.services['keygen']!.command!;
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    const script = command[2]!.replaceAll(keyDir, scratch);
    const first = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(first).toMatch(/generated an encryption key.*back it up/);
    const key = readFileSync(join(scratch, 'tidemark.key'), 'utf8');
    expect(key).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(join(scratch, 'tidemark.key')).mode & 0o077).toBe(0);
    const second = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(second).toMatch(/encryption key present/);
    expect(readFileSync(join(scratch, 'tidemark.key'), 'utf8')).toBe(key);
  });
});

describe('docker compose files agent', () => {
  const { config } = loadConfig({ TIDEMARK_CONFIG: join(repo, 'config/compose/tidemark.yaml') });
  const agent = compose.services['files-agent']!;
  const mountOf = (volume: string) => agent.volumes?.find((v) => v.startsWith(`${volume}:`))?.split(':');

  it('runs the files agent from the image like the other services', () => {
    expect(agent.command).toEqual(['node', 'services/files-agent/dist/main.js']);
    expect(existsSync(join(repo, 'services/files-agent/src/main.ts'))).toBe(true);
    expect(readFileSync(join(repo, 'Dockerfile'), 'utf8')).toContain('COPY services/files-agent/package.json services/files-agent/');
    expect(agent.depends_on?.['nats']?.condition).toBe('service_healthy');
  });

  it('backs up the documents and Ollama models volumes, mounted read-only, as files targets', () => {
    const sources = new Map(config.targets.filter((t) => t.engine === 'files').map((t) => [t.name, t.files?.source]));
    for (const [volume, target, kind] of [['documents', 'docs', 'directory'], ['ollama-models', 'models', 'ollama']] as const) {
      expect(compose.volumes, volume).toHaveProperty(volume);
      const [, mountPoint, mode] = mountOf(volume) ?? [];
      expect(mode, `${volume} is mounted read-only`).toBe('ro');
      expect(sources.get(target)).toMatchObject({ kind, path: mountPoint });
    }
  });

  it('gives the agent a writable work directory for restores, at files.workDir', () => {
    const [volume, mountPoint, mode] = mountOf('files-agent-work') ?? [];
    expect(volume).toBe('files-agent-work');
    expect(mountPoint).toBe(config.files.workDir);
    expect(mode).toBeUndefined();
  });
});
