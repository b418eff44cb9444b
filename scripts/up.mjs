#!/usr/bin/env node
// Runs Tidemark on embedded defaults: a local NATS server with JetStream, a local PostgreSQL 15
// cluster (the demo source and the verification sandbox), filesystem storage, and the six
// services, all under ./.tidemark. State persists across runs; Ctrl-C stops everything.
//
//   node scripts/up.mjs            (after `bash scripts/setup.sh`; `npm run up` does both steps' second half)
//
// Environment: TIDEMARK_HOME (default ./.tidemark), TIDEMARK_NATS_PORT (4222), TIDEMARK_PG_PORT (5433).
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, chownSync, openSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { userInfo } from 'node:os';
import net from 'node:net';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const home = resolve(process.env.TIDEMARK_HOME ?? join(repo, '.tidemark'));
const natsPort = Number(process.env.TIDEMARK_NATS_PORT ?? 4222);
const pgPort = Number(process.env.TIDEMARK_PG_PORT ?? 5433);
const pgBin = '/usr/lib/postgresql/15/bin';
const services = ['storage', 'scheduler', 'pg-agent', 'qdrant-agent', 'verifier', 'alerter'];
const children = [];

const log = (msg) => console.log(`[tidemark up] ${msg}`);
const fail = (msg) => {
  console.error(`[tidemark up] error: ${msg}`);
  process.exit(1);
};

function asPostgresUser() {
  // PostgreSQL refuses to run as root: run it as the `postgres` OS user then.
  if (userInfo().uid !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  return { uid, gid };
}

function chownTree(path, ids) {
  if (ids.uid === undefined) return;
  chownSync(path, ids.uid, ids.gid);
}

function waitPort(port, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((res, rej) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); res(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) rej(new Error(`nothing listens on port ${port}`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

function start(name, command, args, options = {}) {
  const out = openSync(join(home, 'logs', `${name}.log`), 'a');
  const child = spawn(command, args, { stdio: ['ignore', out, out], ...options });
  child.on('exit', (code, signal) => {
    if (!stopping) log(`${name} exited (${signal ?? code}); see ${join(home, 'logs', `${name}.log`)}`);
  });
  children.push({ name, child });
  return child;
}

let stopping = false;
async function stopAll() {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  // Services first (they drain NATS), then PostgreSQL and NATS.
  for (const { child, name } of [...children].reverse()) {
    if (child.exitCode !== null) continue;
    child.kill(name === 'postgres' ? 'SIGINT' : 'SIGTERM');
    await new Promise((r) => { child.once('exit', r); setTimeout(r, 15_000); });
  }
  process.exit(0);
}
process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);

if (!existsSync('/usr/sbin/nats-server') && !existsSync('/usr/bin/nats-server')) fail('nats-server is not installed: run `bash scripts/setup.sh`');
if (!existsSync(join(pgBin, 'postgres'))) fail('PostgreSQL 15 is not installed: run `bash scripts/setup.sh`');
for (const s of services) {
  if (!existsSync(join(repo, 'services', s, 'dist', 'main.js'))) fail(`services/${s} is not built: run \`npm run build\``);
}

for (const d of ['', 'logs', 'nats', 'storage']) mkdirSync(join(home, d), { recursive: true });

// ---- NATS
start('nats', 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(home, 'nats')]);
await waitPort(natsPort);
log(`NATS with JetStream on nats://127.0.0.1:${natsPort}`);

// ---- PostgreSQL
const ids = asPostgresUser();
const pgData = join(home, 'pg');
const pgSocket = join(home, 'pg-socket');
const passwordFile = join(home, 'pg-password');
mkdirSync(pgSocket, { recursive: true });
chownTree(pgSocket, ids);
if (!existsSync(join(pgData, 'PG_VERSION'))) {
  mkdirSync(pgData, { recursive: true, mode: 0o700 });
  chownTree(pgData, ids);
  writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const pwfile = join(home, '.initdb-pw');
  writeFileSync(pwfile, readFileSync(passwordFile), { mode: 0o600 });
  chownTree(pwfile, ids);
  execFileSync(join(pgBin, 'initdb'), ['-D', pgData, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C.UTF-8'], { ...ids, stdio: 'ignore' });
  execFileSync('rm', ['-f', pwfile]);
  log(`created a PostgreSQL 15 cluster in ${pgData}`);
}
const pgPassword = readFileSync(passwordFile, 'utf8').trim();
start('postgres', join(pgBin, 'postgres'), ['-D', pgData, '-p', String(pgPort), '-k', pgSocket, '-c', 'listen_addresses=127.0.0.1'], ids);
await waitPort(pgPort);
const psql = (db, sql) => execFileSync('psql', ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', db, '-qAtc', sql], { env: { ...process.env, PGPASSWORD: pgPassword } }).toString().trim();
for (let i = 0; i < 50; i++) {
  try { psql('postgres', 'select 1'); break; } catch { await new Promise((r) => setTimeout(r, 200)); }
}
if (psql('postgres', "select count(*) from pg_database where datname = 'demo'") === '0') {
  psql('postgres', 'CREATE DATABASE demo');
  const hasVector = psql('postgres', "select count(*) from pg_available_extensions where name = 'vector'") !== '0';
  psql('demo', 'CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text)');
  psql('demo', "INSERT INTO documents (title, body) SELECT 'document ' || i, repeat(md5(i::text), 4) FROM generate_series(1, 1000) i");
  if (hasVector) {
    psql('demo', 'CREATE EXTENSION vector');
    psql('demo', 'CREATE TABLE embeddings (id int PRIMARY KEY REFERENCES documents(id), embedding vector(3))');
    psql('demo', "INSERT INTO embeddings SELECT i, ('[' || sin(i) || ',' || cos(i) || ',' || sin(2*i) || ']')::vector FROM generate_series(1, 1000) i");
  }
  log(`created the demo database${hasVector ? ' (with a pgvector table)' : ' (pgvector not installed: run scripts/install-pgvector.sh for the vector table)'}`);
}
log(`PostgreSQL 15 on 127.0.0.1:${pgPort} (user postgres, password in ${passwordFile})`);

// ---- configuration
const keyFile = join(home, 'encryption.key');
if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
const configPath = join(home, 'tidemark.yaml');
if (!existsSync(configPath)) {
  writeFileSync(configPath, `# Generated by scripts/up.mjs; edit freely (see README "Configuration").
nats:
  url: nats://127.0.0.1:${natsPort}
storage:
  type: fs
  root: ./storage
encryption:
  keyFile: ./encryption.key   # back this file up apart from the backups: without it they cannot be read
  keyId: local-default
defaults:
  compression: zstd
  encrypt: true
  verify: true
  retention:
    keepLast: 7
    maxAgeDays: 30
sandbox:
  postgres:
    host: 127.0.0.1
    port: ${pgPort}
    user: postgres
    passwordFile: ./pg-password
pg:
  workDir: ./pg-work          # WAL spool, point-in-time restores, verifier scratch
targets:
  - name: demo
    engine: pg
    postgres:
      host: 127.0.0.1
      port: ${pgPort}
      user: postgres
      database: demo
      passwordFile: ./pg-password
    wal:
      enabled: true           # continuous WAL archiving: point-in-time recovery to any second
    schedules:
      - id: nightly
        cron: "0 2 * * *"
      - id: nightly-base
        cron: "30 2 * * *"
        kind: base
`);
  log(`wrote ${configPath}`);
}

// ---- services
const env = { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: `nats://127.0.0.1:${natsPort}` };
let healthPort = 8081;
for (const s of services) {
  start(s, process.execPath, [join(repo, 'services', s, 'dist', 'main.js')], { env: { ...env, TIDEMARK_HEALTH_PORT: String(healthPort) } });
  await waitPort(healthPort).catch(() => fail(`${s} did not start; see ${join(home, 'logs', `${s}.log`)}`));
  log(`${s} running (health http://127.0.0.1:${healthPort}/healthz, log ${join('.tidemark', 'logs', `${s}.log`)})`);
  healthPort++;
}
log('ready. In another shell:');
log('  npx tidemark backup pg demo --wait     # back up the demo database and prove it by restore');
log('  npx tidemark backup pg demo --kind base --wait   # a physical base backup (WAL is archived continuously)');
log('  npx tidemark restore pg demo --to latest --wait   # point-in-time restore into a new server');
log('  npx tidemark status');
log('Ctrl-C stops everything; state stays in ' + home);
