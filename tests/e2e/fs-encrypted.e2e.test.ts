// End to end on filesystem storage with encryption, and the corruption → alert path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Manifest } from '@tidemark/contracts';
import { Stack, cronInSeconds, seedSourceDatabase } from './stack.js';

describe('encrypted logical backups end to end on filesystem storage', () => {
  let stack: Stack;
  let webhook: Server;
  const webhookBodies: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    webhook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        webhookBodies.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    const port = (webhook.address() as AddressInfo).port;
    stack = await Stack.start({
      storage: 'fs',
      encrypt: true,
      schedules: `      - id: soon\n        cron: "${cronInSeconds(20)}"\n`,
      webhookUrl: `http://127.0.0.1:${port}/hook`,
    });
    await seedSourceDatabase(stack.pg);
    await stack.startAll();
  });

  afterAll(async () => {
    await stack?.stop();
    await new Promise((r) => webhook?.close(r));
  });

  it('a scheduled, encrypted backup is stored on disk and verified by restore', async () => {
    const stored = await stack.waitFor('artifact.stored.pg.main', () => true, 60_000);
    const artifactId = stored.data.artifactId as string;
    await stack.waitFor('verify.passed.pg.main', (e) => e.data.artifactId === artifactId, 90_000);
    const dir = join(stack.storageRoot, 'artifacts', 'pg', 'main', artifactId);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.pipeline.encryption?.keyId).toBe('e2e-key');
    expect((manifest.source as { tables: Array<{ name: string; rows: number }> }).tables.find((t) => t.name === 'embeddings')?.rows).toBe(2000);
    // The stored bytes are ciphertext: no table data is readable in them.
    const data = await readFile(join(stack.storageRoot, manifest.data.key));
    expect(data.includes(Buffer.from('doc 1999'))).toBe(false);
  });

  it('a flipped byte in a stored artifact fails verification and raises an alert', async () => {
    const verifier = stack.processes.find((p) => p.name === 'verifier');
    if (!verifier) throw new Error('verifier not running');
    // With the verifier down the artifact waits in its durable consumer; we corrupt it meanwhile.
    await verifier.kill('SIGTERM');
    stack.nc.publish('backup.requested.pg.main', new TextEncoder().encode('{"requestId":"to-corrupt"}'));
    const stored = await stack.waitFor('artifact.stored.pg.main', (e) => e.data.requestId === 'to-corrupt');
    const artifactId = stored.data.artifactId as string;
    const dir = join(stack.storageRoot, 'artifacts', 'pg', 'main', artifactId);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    const path = join(stack.storageRoot, manifest.data.key);
    const bytes = await readFile(path);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(path, bytes);
    await stack.startService('verifier');
    const failed = await stack.waitFor('verify.failed.pg.main', (e) => e.data.artifactId === artifactId, 90_000);
    expect((failed.data.error as { code: string }).code).toMatch(/^INTEGRITY_/);
    const alert = await stack.waitFor('alert.critical.verify_failed', (e) => e.data.artifactId === artifactId);
    expect(alert.data.summary).toEqual(expect.stringContaining(artifactId));
    const deadline = Date.now() + 20_000;
    while (!webhookBodies.some((b) => JSON.stringify(b).includes(artifactId)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(webhookBodies.some((b) => JSON.stringify(b).includes(artifactId))).toBe(true);
  });
});
