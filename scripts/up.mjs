#!/usr/bin/env node
// Runs Tidemark on embedded defaults: a local NATS server with JetStream, a local PostgreSQL 15
// cluster (the demo source and the verification sandbox), filesystem storage, and the seven
// services, all under TIDEMARK_HOME. State persists across runs; Ctrl-C stops everything.
//
//   node scripts/up.mjs            (after `bash scripts/setup.sh`; `bash scripts/up.sh` runs both)
//
// Environment: TIDEMARK_HOME (default <repo>/.tidemark), TIDEMARK_NATS_PORT (4222),
// TIDEMARK_PG_PORT (5433), TIDEMARK_HEALTH_PORT_BASE (8081: the seven services use it and the next six).
//
// Run as root, PostgreSQL's processes run as the `postgres` OS user, and whatever they must reach
// (the cluster, its socket, pg.workDir) lives in /var/lib/tidemark/<hash of TIDEMARK_HOME>: see
// postgresStateDir() for why.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, chownSync, chmodSync, openSync, closeSync, statSync, rmSync, readSync, readdirSync } from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import { join, resolve, dirname, relative, basename, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { userInfo } from 'node:os';
import net from 'node:net';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const home = resolve(process.env.TIDEMARK_HOME ?? join(repo, '.tidemark'));
const natsPort = portFromEnv('TIDEMARK_NATS_PORT', 4222);
const pgPort = portFromEnv('TIDEMARK_PG_PORT', 5433);
const healthPortBase = portFromEnv('TIDEMARK_HEALTH_PORT_BASE', 8081);
const pgBin = '/usr/lib/postgresql/15/bin';
const services = ['storage', 'scheduler', 'pg-agent', 'qdrant-agent', 'files-agent', 'verifier', 'alerter'];
const isRoot = userInfo().uid === 0;
/** Everything started, in start order; stopped in reverse. */
const children = [];

class StartupError extends Error {}

const log = (msg) => console.log(`[tidemark up] ${msg}`);
const fail = (msg) => { throw new StartupError(msg); };

/** A path as the user can type it from here: relative when it is under the current directory. */
function shown(path) {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function portFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`[tidemark up] error: ${name}=${JSON.stringify(raw)} is not a port number (1-65535)`);
    process.exit(1);
  }
  return port;
}

/**
 * Runs a tool to completion and returns its stdout. A failure names the tool and carries its own
 * stderr: "Command failed … stderr: null" tells nobody why initdb refused.
 */
function runTool(command, args, options = {}) {
  try {
    return execFileSync(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (error) {
    const output = `${error.stderr ?? ''}`.trim() || `${error.stdout ?? ''}`.trim();
    const how = error.code === 'ENOENT' ? 'is not installed' : `failed (${error.signal ?? `exit ${error.status ?? error.code}`})`;
    throw new StartupError(`${basename(command)} ${how}${output ? `:\n${output}` : `: ${error.message}`}`);
  }
}

/** uid/gid of the postgres OS user when we are root (PostgreSQL refuses to run as root); {} otherwise. */
function asPostgresUser() {
  if (!isRoot) return {};
  const uid = Number(runTool('id', ['-u', 'postgres']).trim());
  const gid = Number(runTool('id', ['-g', 'postgres']).trim());
  return { uid, gid };
}

/** Whether `user` can enter every directory from / down to `path` (it needs x on each). */
function traversable(path, user) {
  for (let dir = path; ; dir = dirname(dir)) {
    const info = statSync(dir, { throwIfNoEntry: false });
    if (info !== undefined) {
      const enterable = (info.uid === user.uid && (info.mode & 0o100) !== 0) || (info.gid === user.gid && (info.mode & 0o010) !== 0) || (info.mode & 0o001) !== 0;
      if (!enterable) return false;
    }
    if (dirname(dir) === dir) return true;
  }
}

/**
 * Where the files PostgreSQL's processes must reach live: the cluster, its socket directory,
 * initdb's password file and pg.workDir (WAL spool, restored servers, verifier scratch).
 *
 * Not root: they run as us, so TIDEMARK_HOME itself. Root: they run as `postgres`, which cannot
 * enter a 0700 home (/root, every Debian 12 home). Always using /var/lib/tidemark/<hash> as root,
 * rather than only when the home happens to be unreachable, keeps the placement independent of
 * the modes of the home's parents (a later `chmod 700 ~` would otherwise strand the cluster), and
 * leaves the user's home and its permissions untouched. A cluster created in the home by an
 * earlier version keeps being used there.
 */
function postgresStateDir(pgUser) {
  if (!isRoot) return home;
  if (existsSync(join(home, 'pg', 'PG_VERSION')) && traversable(join(home, 'pg'), pgUser)) return home;
  return join('/var/lib/tidemark', createHash('sha256').update(home).digest('hex').slice(0, 16));
}

function ensurePostgresStateDir(dir, pgUser) {
  if (dir === home) return;
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, pgUser.uid, pgUser.gid);
  chmodSync(dir, 0o700);
  // Says which installation owns this directory, for whoever finds it in /var/lib/tidemark.
  writeFileSync(join(dir, 'TIDEMARK_HOME'), `${home}\n`);
}

/** Throws when something already listens on the port, so that we never talk to a stranger's server. */
function assertPortFree(port, what, variable) {
  return new Promise((res, rej) => {
    const server = net.createServer();
    server.once('error', (error) => {
      rej(new StartupError(error.code === 'EADDRINUSE'
        ? `port ${port} (${what}) is already in use, perhaps by an earlier \`scripts/up.sh\` still running: stop it, or choose another port with ${variable}`
        : `cannot check port ${port} (${what}): ${error.message}`));
    });
    server.listen(port, '127.0.0.1', () => server.close(() => res()));
  });
}

/** The lines a child wrote to its log since it started: shown when it dies during start-up. */
function logTail(entry, lines = 20) {
  const fd = openSync(entry.logPath, 'r');
  try {
    const size = statSync(entry.logPath).size;
    const length = Math.min(size - entry.logOffset, 64 * 1024);
    const buffer = Buffer.alloc(Math.max(length, 0));
    readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** Resolves once the port accepts connections; rejects with the child's own output if it exits first. */
function waitPort(port, entry, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((res, rej) => {
    let timer;
    const died = () => {
      clearTimeout(timer);
      const tail = logTail(entry);
      rej(new StartupError(`${entry.name} exited during start-up (${entry.child.signalCode ?? `exit ${entry.child.exitCode}`})${tail ? `:\n${tail}` : ''}\n(full log: ${shown(entry.logPath)})`));
    };
    if (entry.child.exitCode !== null || entry.child.signalCode !== null) return died();
    entry.child.once('exit', died);
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); entry.child.off('exit', died); res(); });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) {
          entry.child.off('exit', died);
          rej(new StartupError(`${entry.name} did not listen on port ${port} within ${timeoutMs / 1000} s; see ${shown(entry.logPath)}`));
        } else timer = setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

function start(name, command, args, options = {}) {
  const logPath = join(home, 'logs', `${name}.log`);
  const out = openSync(logPath, 'a');
  const logOffset = statSync(logPath).size;
  const child = spawn(command, args, { stdio: ['ignore', out, out], ...options });
  closeSync(out);
  const entry = { name, child, logPath, logOffset };
  // A failed spawn (ENOENT, EACCES) says so in the log, where died() finds it.
  child.on('error', (error) => writeFileSync(logPath, `[tidemark up] cannot start ${command}: ${error.message}\n`, { flag: 'a' }));
  child.on('exit', (code, signal) => {
    if (!stopping && started) log(`${name} exited (${signal ?? code}); see ${shown(logPath)}`);
  });
  children.push(entry);
  return entry;
}

let started = false;
let stopping = false;
/** Where point-in-time restores put their servers (pg.workDir/restores), once known. */
let restoresDir;
/** The postgres OS user's uid/gid when we are root, once known. */
let pgUserIds = {};

/**
 * Stops the servers that point-in-time restores started and handed over: they run detached from
 * the pg-agent, so stopping it leaves them up, and "Ctrl-C stops everything" must hold. Their data
 * directories stay; `pg_ctl start -D <dir>` brings one back.
 */
function stopRestoredServers() {
  if (restoresDir === undefined || !existsSync(restoresDir)) return;
  for (const entry of readdirSync(restoresDir, { withFileTypes: true })) {
    const dataDir = join(restoresDir, entry.name);
    if (!entry.isDirectory() || !existsSync(join(dataDir, 'postmaster.pid'))) continue;
    try {
      runTool(join(pgBin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '15'], { ...pgUserIds, cwd: restoresDir });
      log(`stopped the restored server in ${dataDir} (its data stays; \`pg_ctl start -D ${dataDir}\` as ${isRoot ? 'postgres' : 'you'} starts it again)`);
    } catch (error) {
      // A stale postmaster.pid (the server is already gone) is not worth a complaint.
      if (!/(no server running|is not running)/i.test(error.message)) log(`could not stop the restored server in ${dataDir}: ${error.message}`);
    }
  }
}

async function stopAll(exitCode) {
  if (stopping) return;
  stopping = true;
  if (children.some(({ child }) => child.exitCode === null && child.signalCode === null)) log('stopping…');
  // Services first (they drain NATS), then PostgreSQL and NATS.
  for (const { child, name } of [...children].reverse()) {
    // After the services (no restore can start any more), before PostgreSQL and NATS.
    if (name === 'postgres') stopRestoredServers();
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(name === 'postgres' ? 'SIGINT' : 'SIGTERM'); // SIGINT: PostgreSQL's fast shutdown
    const timedOut = await Promise.race([exited.then(() => false), new Promise((r) => setTimeout(() => r(true), 15_000))]);
    if (timedOut) {
      log(`${name} did not stop within 15 s; killing it`);
      child.kill('SIGKILL');
      await exited;
    }
  }
  process.exit(exitCode);
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

async function main() {
  if (!existsSync('/usr/sbin/nats-server') && !existsSync('/usr/bin/nats-server')) fail('nats-server is not installed: run `bash scripts/setup.sh`');
  if (!existsSync(join(pgBin, 'postgres'))) fail('PostgreSQL 15 is not installed: run `bash scripts/setup.sh`');
  for (const s of services) {
    if (!existsSync(join(repo, 'services', s, 'dist', 'main.js'))) fail(`services/${s} is not built: run \`npm run build\``);
  }
  await assertPortFree(natsPort, 'NATS', 'TIDEMARK_NATS_PORT');
  await assertPortFree(pgPort, 'PostgreSQL', 'TIDEMARK_PG_PORT');
  for (let i = 0; i < services.length; i++) await assertPortFree(healthPortBase + i, `${services[i]} health`, 'TIDEMARK_HEALTH_PORT_BASE');

  for (const d of ['', 'logs', 'nats', 'storage']) mkdirSync(join(home, d), { recursive: true });

  // ---- where PostgreSQL's files go (before anything starts: a failure here leaves nothing running)
  const pgUser = asPostgresUser();
  const pgState = postgresStateDir(pgUser);
  ensurePostgresStateDir(pgState, pgUser);
  const pgData = join(pgState, 'pg');
  const pgSocket = join(pgState, 'pg-socket');
  const pgWorkDir = pgState === home ? './pg-work' : join(pgState, 'work');
  restoresDir = join(resolve(home, pgWorkDir), 'restores');
  pgUserIds = pgUser;
  const passwordFile = join(home, 'pg-password');
  const clusterExists = existsSync(join(pgData, 'PG_VERSION'));
  if (clusterExists && !existsSync(passwordFile)) {
    fail(`the PostgreSQL cluster in ${pgData} belongs to this TIDEMARK_HOME, but its password file ${shown(passwordFile)} is gone (was ${shown(home)} removed?): restore the file, or remove ${pgState} to start afresh`);
  }

  // ---- NATS
  const nats = start('nats', 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(home, 'nats')]);
  await waitPort(natsPort, nats);
  log(`NATS with JetStream on nats://127.0.0.1:${natsPort}`);

  // ---- PostgreSQL
  mkdirSync(pgSocket, { recursive: true });
  if (isRoot) chownSync(pgSocket, pgUser.uid, pgUser.gid);
  if (!clusterExists) initCluster(pgData, pgState, passwordFile, pgUser);
  const pgPassword = readFileSync(passwordFile, 'utf8').trim();
  const postgres = start('postgres', join(pgBin, 'postgres'), ['-D', pgData, '-p', String(pgPort), '-k', pgSocket, '-c', 'listen_addresses=127.0.0.1'], { ...pgUser, cwd: pgState });
  await waitPort(pgPort, postgres);
  const psql = (db, sql) => runTool('psql', ['-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', db, '-qAtc', sql], { env: { ...process.env, PGPASSWORD: pgPassword } }).trim();
  await waitForSql(psql);
  createDemoDatabase(psql);
  log(`PostgreSQL 15 on 127.0.0.1:${pgPort} (user postgres, password in ${shown(passwordFile)}; cluster in ${shown(pgData)})`);

  // ---- configuration, and the demo documents the files target `docs` backs up
  createDemoDocuments();
  const configPath = writeDefaultConfig(pgWorkDir);

  // ---- services
  const env = { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: `nats://127.0.0.1:${natsPort}` };
  for (let i = 0; i < services.length; i++) {
    const s = services[i];
    const healthPort = healthPortBase + i;
    const service = start(s, process.execPath, [join(repo, 'services', s, 'dist', 'main.js')], { env: { ...env, TIDEMARK_HEALTH_PORT: String(healthPort) } });
    await waitPort(healthPort, service);
    log(`${s} running (health http://127.0.0.1:${healthPort}/healthz, log ${shown(service.logPath)})`);
  }
  started = true;
  const envPrefix = natsPort === 4222 ? '' : `TIDEMARK_NATS_URL=nats://127.0.0.1:${natsPort} `;
  log('ready. In another shell:');
  log(`  ${envPrefix}npx tidemark backup pg demo --wait     # back up the demo database and prove it by restore`);
  log(`  ${envPrefix}npx tidemark backup pg demo --kind base --wait   # a physical base backup (WAL is archived continuously)`);
  log(`  ${envPrefix}npx tidemark restore pg demo --to latest --wait   # point-in-time restore into a new server`);
  log(`  ${envPrefix}npx tidemark backup files docs --wait   # back up ${shown(join(home, 'demo-docs'))} (chunked, deduplicated, encrypted)`);
  log(`  ${envPrefix}npx tidemark ls files docs cases --recursive`);
  log(`  ${envPrefix}npx tidemark restore files docs --path cases/2024 --into ${join(home, 'restored-docs')} --wait`);
  log(`  ${envPrefix}npx tidemark status`);
  log(`Ctrl-C stops everything; state stays in ${shown(home)}${pgState === home ? '' : ` and ${pgState}`}`);
}

function initCluster(pgData, pgState, passwordFile, pgUser) {
  const startsEmpty = !existsSync(pgData) || readdirSync(pgData).length === 0;
  mkdirSync(pgData, { recursive: true, mode: 0o700 });
  if (isRoot) chownSync(pgData, pgUser.uid, pgUser.gid);
  writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  // initdb reads the password as the postgres user: the file sits beside the cluster, never in the home.
  const pwfile = join(pgState, '.initdb-pw');
  writeFileSync(pwfile, readFileSync(passwordFile), { mode: 0o600 });
  if (isRoot) chownSync(pwfile, pgUser.uid, pgUser.gid);
  try {
    runTool(join(pgBin, 'initdb'), ['-D', pgData, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C.UTF-8'], { ...pgUser, cwd: pgState });
  } catch (error) {
    // A half-initialised directory would make the next initdb refuse ("exists but is not empty");
    // a directory that held something before is not ours to delete.
    if (startsEmpty) rmSync(pgData, { recursive: true, force: true });
    throw error;
  } finally {
    rmSync(pwfile, { force: true });
  }
  log(`created a PostgreSQL 15 cluster in ${shown(pgData)}`);
}

async function waitForSql(psql) {
  for (let attempt = 1; ; attempt++) {
    try {
      psql('postgres', 'select 1');
      return;
    } catch (error) {
      if (attempt >= 50) throw error; // its stderr says why (password, startup, recovery)
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function createDemoDatabase(psql) {
  if (psql('postgres', "select count(*) from pg_database where datname = 'demo'") !== '0') return;
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

/**
 * A few documents for the files target `docs` to back up, created once (then they are the user's
 * to change: a second backup stores only what changed).
 */
function createDemoDocuments() {
  const root = join(home, 'demo-docs');
  if (existsSync(root)) return;
  const files = {
    'README.txt': 'Demo documents for Tidemark\'s files target "docs". Change, add or remove files, then back up again.\n',
    'cases/2023/0001-lease-dispute.md': '# Case 2023-0001\n\nLease dispute, settled.\n',
    'cases/2024/0042-contract-review.md': '# Case 2024-0042\n\nContract review for the supplier agreement.\n',
    'cases/2024/0043-data-request.md': '# Case 2024-0043\n\nSubject access request, answered within 30 days.\n',
    'cases/2024/exhibits/scan-001.txt': `${'exhibit line\n'.repeat(20_000)}`,
    'policies/retention.md': '# Retention\n\nClient files are kept for seven years after a case closes.\n',
  };
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  log(`created demo documents in ${shown(root)} (target docs)`);
}

/** Writes tidemark.yaml and the encryption key unless they exist (the user may have edited them). */
function writeDefaultConfig(pgWorkDir) {
  const keyFile = join(home, 'encryption.key');
  if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const configPath = join(home, 'tidemark.yaml');
  if (existsSync(configPath)) {
    if (!/engine:\s*files/.test(readFileSync(configPath, 'utf8'))) {
      log(`${shown(configPath)} was written before files targets: add the target docs (README "Files") to back up ${shown(join(home, 'demo-docs'))}, or move the file aside to have it written again`);
    }
    return configPath;
  }
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
  workDir: ${pgWorkDir}${pgWorkDir.startsWith('./') ? '          ' : ''}  # WAL spool, point-in-time restores, verifier scratch${isRoot ? ' (the postgres user must reach it)' : ''}
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
  - name: docs
    engine: files
    files:
      source:
        kind: directory
        path: ./demo-docs
    schedules:
      - id: nightly
        cron: "0 3 * * *"
    retention:                # one a day for a week, one a week for a month, one a month for a year
      keepLast: 3
      keepDaily: 7
      keepWeekly: 4
      keepMonthly: 12
      maxAgeDays: 30
files:
  workDir: ./files-work       # default restores of files targets, verifier scratch
`);
  log(`wrote ${shown(configPath)}`);
  return configPath;
}

try {
  await main();
} catch (error) {
  console.error(`[tidemark up] error: ${error instanceof StartupError ? error.message : error?.stack ?? error}`);
  await stopAll(1);
}
