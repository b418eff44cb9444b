#!/usr/bin/env node
// Benchmark: a portable Qdrant export and its restore through the qdrant-agent (NATS command →
// agent → scroll → msgpack → zstd → AES-256-GCM → filesystem storage; restore: storage → decode →
// upsert batches), against the Qdrant test double. Prints points/s both ways and the agent's peak RSS.
// The double itself (JSON over HTTP in this process) bounds the figures: see the note it prints.
//
//   npm run build && node bench/qdrant-export.mjs [--points 100000] [--dim 768]
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import { QdrantClient } from '@qdrant/js-client-rest';
import { decode } from '@tidemark/contracts';
import { freePort, startNats, startQdrant } from '@tidemark/testkit';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const total = Number(arg('points', '100000'));
const dim = Number(arg('dim', '768'));
const t = () => performance.now();

const dir = await mkdtemp(join(tmpdir(), 'tidemark-qbench-'));
const nats = await startNats();
const qdrant = await startQdrant();
const client = new QdrantClient({ url: qdrant.url, checkCompatibility: false });
try {
  console.log(`# seeding ${total} points of ${dim} dimensions into the double…`);
  const s0 = t();
  await client.createCollection('docs', { vectors: { size: dim, distance: 'Cosine' } });
  for (let start = 0; start < total; start += 1000) {
    const points = [];
    for (let i = start; i < Math.min(total, start + 1000); i++) {
      points.push({ id: i + 1, vector: Array.from({ length: dim }, () => Math.random() - 0.5), payload: { title: `doc ${i}`, updatedAt: 1 } });
    }
    await client.upsert('docs', { wait: true, points });
  }
  console.log(`# seeded in ${((t() - s0) / 1000).toFixed(1)} s`);

  const configPath = join(dir, 'tidemark.yaml');
  await writeFile(
    configPath,
    `nats:\n  url: ${nats.url}\nstorage:\n  type: fs\n  root: ${join(dir, 'storage')}\nencryption:\n  keyEnv: BENCH_KEY\n` +
      `defaults:\n  compression: zstd\n  encrypt: true\n  verify: false\n` +
      `targets:\n  - name: vectors\n    engine: qdrant\n    qdrant:\n      url: ${qdrant.url}\n      timeoutMs: 120000\n`,
  );
  const agent = spawn(process.execPath, [join(repo, 'services/qdrant-agent/dist/main.js')], {
    env: { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: nats.url, BENCH_KEY: randomBytes(32).toString('hex'), TIDEMARK_HEALTH_PORT: String(await freePort()), TIDEMARK_LOG_LEVEL: 'warn', TIDEMARK_ACK_WAIT_MS: '120000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let peakKiB = 0;
  const sampler = setInterval(async () => {
    const status = await readFile(`/proc/${agent.pid}/status`, 'utf8').catch(() => '');
    peakKiB = Math.max(peakKiB, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
  }, 200);
  const nc = await connect({ servers: nats.url });
  const next = (prefix, match) =>
    new Promise((res, rej) => {
      const sub = nc.subscribe(`${prefix}.>`);
      (async () => {
        for await (const m of sub) {
          const e = decode(m.data, m.headers);
          if (!match(e)) continue;
          sub.unsubscribe();
          if (m.subject.includes('.failed.')) rej(new Error(JSON.stringify(e.error)));
          else res(e);
        }
      })();
    });
  await new Promise((r) => setTimeout(r, 1500));

  const exported = Promise.race([next('artifact.stored', (e) => e.requestId === 'qbench-export'), next('backup.failed', (e) => e.requestId === 'qbench-export' && e.final)]);
  let s = t();
  nc.publish('backup.requested.qdrant.vectors', new TextEncoder().encode(JSON.stringify({ kind: 'export', requestId: 'qbench-export' })));
  const stored = await exported;
  const exportMs = t() - s;
  console.log(`export: ${total} points in ${(exportMs / 1000).toFixed(1)} s = ${Math.round(total / (exportMs / 1000))} points/s, stored ${(stored.storedBytes / 1024 ** 2).toFixed(0)} MiB`);

  const restored = Promise.race([next('restore.completed', (e) => e.requestId === 'qbench-restore'), next('restore.failed', (e) => e.requestId === 'qbench-restore')]);
  s = t();
  nc.publish('restore.requested.qdrant.vectors', new TextEncoder().encode(JSON.stringify({ requestId: 'qbench-restore', artifactId: stored.artifactId, intoCollection: 'docs_restored' })));
  await restored;
  const restoreMs = t() - s;
  console.log(`restore: ${total} points in ${(restoreMs / 1000).toFixed(1)} s = ${Math.round(total / (restoreMs / 1000))} points/s`);
  clearInterval(sampler);
  console.log(`qdrant-agent peak RSS: ${(peakKiB / 1024).toFixed(0)} MiB`);
  console.log('note: the double serves JSON from this same process; a real Qdrant answers faster, so these are lower bounds');
  agent.kill('SIGTERM');
  await nc.close();
} finally {
  await qdrant.stop();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}
