#!/usr/bin/env node
// Benchmark: a logical backup of a ≥1 GiB database (with a pgvector table) through the whole
// Tidemark path (NATS command → pg-agent → pg_dump → zstd → AES-256-GCM → sha256 → filesystem
// storage → manifest), against a bare `pg_dump -Fc -Z0 > /dev/null` of the same database in the
// same run. Prints both times, the ratio, and the agent's peak RSS (VmHWM).
//
//   npm run build && node bench/pg-logical-backup.mjs [--gib 1.1] [--encrypt true] [--compression zstd] [--level 3] [--checksums true]
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { connect, headers } from 'nats';
import { encode, decode, subjects, CONTENT_TYPE_HEADER, MSGPACK } from '@tidemark/contracts';
import { freePort, startNats, startPostgres } from '@tidemark/testkit';
import { buildRagDatabase } from './lib/rag-database.mjs';
import { peakRssSampler } from './lib/peak-rss.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const targetGiB = Number(arg('gib', '1.1'));
const encrypt = arg('encrypt', 'true') !== 'false';
const compression = arg('compression', 'zstd');
const checksums = arg('checksums', 'true') !== 'false';
const level = arg('level', undefined);

const t = () => performance.now();
const fmt = (ms) => `${(ms / 1000).toFixed(1)} s`;

const dir = await mkdtemp(join(tmpdir(), 'tidemark-bench-'));
const nats = await startNats();
const pg = await startPostgres({ pgvector: true, settings: { shared_buffers: '512MB', max_wal_size: '4GB', checkpoint_timeout: '30min' } });
try {
  await buildRagDatabase(pg, { gib: targetGiB, database: 'bench' });

  const pgEnv = { ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password, PGDATABASE: 'bench' };
  const runDump = () =>
    new Promise((res, rej) => {
      const s = t();
      // Exactly `pg_dump -Fc -Z0 > /dev/null` (with -f, pg_dump 15 tries to fsync /dev/null).
      const devNull = openSync('/dev/null', 'w');
      const p = spawn('pg_dump', ['-Fc', '-Z0'], { env: pgEnv, stdio: ['ignore', devNull, 'inherit'] });
      p.on('exit', (code) => (code === 0 ? res(t() - s) : rej(new Error(`pg_dump exited ${code}`))));
    });
  await runDump(); // warm the cache so both runs read from memory alike
  const dumpMs = await runDump();
  console.log(`pg_dump -Fc -Z0 > /dev/null: ${fmt(dumpMs)}`);

  const keyHex = randomBytes(32).toString('hex');
  const configPath = join(dir, 'tidemark.yaml');
  await writeFile(
    configPath,
    `nats:\n  url: ${nats.url}\nstorage:\n  type: fs\n  root: ${join(dir, 'storage')}\n` +
      (encrypt ? `encryption:\n  keyEnv: BENCH_KEY\n` : '') +
      `defaults:\n  compression: ${compression}\n  encrypt: ${encrypt}\n  verify: false\n` +
      `targets:\n  - name: bench\n    engine: pg\n    tableChecksums: ${checksums}\n` +
      (level !== undefined ? `    compressionLevel: ${level}\n` : '') +
      `    postgres:\n      host: ${pg.host}\n      port: ${pg.port}\n      user: ${pg.user}\n      database: bench\n      passwordEnv: BENCH_PG_PASSWORD\n`,
  );
  const agent = spawn(process.execPath, [join(repo, 'services/pg-agent/dist/main.js')], {
    env: { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: nats.url, BENCH_KEY: keyHex, BENCH_PG_PASSWORD: pg.password, TIDEMARK_HEALTH_PORT: String(await freePort()), TIDEMARK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const nc = await connect({ servers: nats.url });
  const done = new Promise((res, rej) => {
    const sub = nc.subscribe('backup.*.pg.bench');
    (async () => {
      for await (const m of sub) {
        const e = decode(m.data, m.headers);
        if (m.subject.startsWith('backup.completed')) res(e);
        if (m.subject.startsWith('backup.failed') && e.final) rej(new Error(JSON.stringify(e.error)));
      }
    })();
  });
  await new Promise((r) => setTimeout(r, 1500)); // let the agent create its consumer
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  const rss = peakRssSampler();
  rss.add(agent.pid);
  const s = t();
  await nc.jetstream().publish(subjects.backupRequested('pg', 'bench'), encode({ requestId: 'bench-1' }), { headers: h, msgID: 'bench-1' });
  const completed = await done;
  const agentMs = t() - s;
  await rss.sample();
  rss.stop();
  console.log(`tidemark backup (${compression}${level !== undefined ? ` level ${level}` : ''}${encrypt ? ' + aes-256-gcm' : ''}${checksums ? ' + table checksums' : ''}): ${fmt(agentMs)}, stored ${(completed.storedBytes / 1024 ** 2).toFixed(0)} MiB`);
  console.log(`ratio tidemark / pg_dump: ${(agentMs / dumpMs).toFixed(2)}`);
  console.log(`pg-agent peak RSS: ${rss.peakMiB().toFixed(0)} MiB`);
  agent.kill('SIGTERM');
  await nc.close();
} finally {
  await pg.stop();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}
