#!/usr/bin/env node
// Benchmark: physical backups, point-in-time restore and WAL archiving of a ≥1 GiB database (with
// a pgvector table) through the whole Tidemark path, against pgBackRest on the same server, in the
// same run:
//   1. a full base backup to filesystem storage (NATS command → pg-agent → pg_basebackup → zstd
//      [→ AES-256-GCM] → storage → manifest) against `pgbackrest backup --type=full`
//      (compress-type=zst, i.e. zstd, process-max=2, repository on the same filesystem);
//   2. a restore to a promoted server: Tidemark's point-in-time restore to "latest" against
//      `pgbackrest restore` plus starting PostgreSQL on it until it is promoted;
//   3. pgbench TPS loss while a backup runs, against the seconds just before it in the same
//      pgbench run: Tidemark unthrottled and throttled (baseBackup.maxRateKbps + nice 19),
//      pgBackRest for reference;
//   4. WAL lag (RPO) under pgbench load, from the wal.archived events;
//   5. pg-agent's peak RSS over the whole run.
// Both archivers run for the whole measured part, as they would in production: the pg-agent's
// pg_receivewal (wal.enabled, partial segment every second) and pgBackRest's archive_command.
//
//   npm run build && node bench/pg-physical.mjs [--gib 1.1] [--encrypt true] [--repeat 2]
//     [--pgbench-seconds 30] [--scale 10] [--slowdown 3] [--checksums false] [--tidemark true]
import { mkdir, readFile, rm, writeFile, chmod, chown, mkdtemp } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { connect, headers } from 'nats';
import pgClient from 'pg';
import { encode, decode, subjects, CONTENT_TYPE_HEADER, MSGPACK } from '@tidemark/contracts';
import { POSTGRES_BIN_DIR, POSTGRES_OS_USER, freePort, runProcess, startNats, startPostgres, startProcess } from '@tidemark/testkit';
import { buildRagDatabase } from './lib/rag-database.mjs';
import { peakRssSampler } from './lib/peak-rss.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const targetGiB = Number(arg('gib', '1.1'));
const encrypt = arg('encrypt', 'true') !== 'false';
const repeat = Math.max(1, Number(arg('repeat', '2')));
const pgbenchSeconds = Number(arg('pgbench-seconds', '30'));
const pgbenchScale = Number(arg('scale', '10'));
const slowdown = Number(arg('slowdown', '3'));
// baseBackup.tableChecksums (default false, as in tidemark.yaml): with true a base backup also reads
// the target database once more, while it runs, for the verifier's per-table checksums.
const checksums = arg('checksums', 'false') !== 'false';
// --tidemark false: the pgBackRest half alone (a reference run, or to debug the harness).
const withTidemark = arg('tidemark', 'true') !== 'false';

const TARGET = 'bench';
const PGBENCH = join(POSTGRES_BIN_DIR, 'pgbench');
const PG_CTL = join(POSTGRES_BIN_DIR, 'pg_ctl');
const POSTGRES = join(POSTGRES_BIN_DIR, 'postgres');
const PGBACKREST = '/usr/bin/pgbackrest';

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const lsnValue = (lsn) => {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

/** uid/gid of the postgres OS user: pgBackRest and restored servers must run as the cluster's owner. */
async function postgresOwner() {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === POSTGRES_OS_USER) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`the ${POSTGRES_OS_USER} OS user does not exist: install postgresql-15`);
}

const summary = [];
const report = (line) => {
  console.log(line);
  summary.push(line);
};

const dir = await mkdtemp(join(tmpdir(), 'tidemark-bench-'));
// The postgres user must reach pgBackRest's repository and the restored data directories in here.
await chmod(dir, 0o755);
const owner = await postgresOwner();
const asPostgres = { uid: owner.uid, gid: owner.gid };
const mkdirForPostgres = async (path, mode = 0o750) => {
  await mkdir(path, { recursive: true, mode });
  await chown(path, owner.uid, owner.gid);
  await chmod(path, mode);
  return path;
};

const storageRoot = join(dir, 'storage');
const workDir = join(dir, 'tidemark-pg');

const cleanups = []; // run last-in first-out by cleanUp()
let cleaningUp;
/** Stops everything this run started (agents, pgbench, servers, NATS) and removes its directories; once. */
function cleanUp() {
  cleaningUp ??= (async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch((error) => console.error(`# cleanup: ${error.message}`));
    // Restored servers the agent may have left behind (a failed run) before their directories go.
    await stopLeftoverServers(join(workDir, 'restores'));
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  })();
  return cleaningUp;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`# ${signal}: cleaning up`);
    cleanUp().finally(() => process.exit(130));
  });
}

let nats;
let pg;
try {
  nats = await startNats();
  cleanups.push(() => nats.stop());
  pg = await startPostgres({
    pgvector: true,
    settings: {
      shared_buffers: '512MB',
      max_wal_size: '4GB',
      checkpoint_timeout: '30min',
      // Production-like WAL volume (testkit turns it off for speed); pgbench's WAL depends on it.
      full_page_writes: 'on',
      // pgBackRest needs archiving; archive_command itself is set with ALTER SYSTEM (a -c here
      // would override it), so it can stay a no-op while the database is built.
      archive_mode: 'on',
    },
  });
  cleanups.push(() => pg.stop());
} catch (error) {
  await cleanUp();
  throw error;
}
const socketDir = join(dirname(pg.dataDir), 'socket');
const pgEnv = { ...process.env, PGHOST: pg.host, PGPORT: String(pg.port), PGUSER: pg.user, PGPASSWORD: pg.password };

async function setArchiveCommand(command) {
  await pg.query(`ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
  await pg.query('SELECT pg_reload_conf()');
}

// ---------------------------------------------------------------------------------------------
// pgBackRest

const backrestDir = await mkdirForPostgres(join(dir, 'pgbackrest'));
const backrestConfig = join(backrestDir, 'pgbackrest.conf');
async function setUpPgBackRest() {
  const paths = {};
  for (const name of ['repo', 'log', 'lock', 'spool']) paths[name] = await mkdirForPostgres(join(backrestDir, name));
  await writeFile(
    backrestConfig,
    [
      '[global]',
      `repo1-path=${paths.repo}`,
      'repo1-retention-full=99',
      'compress-type=zst', // pgBackRest's name for zstd (level 3 by default)
      'process-max=2',
      // Like pg_basebackup --checkpoint=fast, which Tidemark uses.
      'start-fast=y',
      `log-path=${paths.log}`,
      `lock-path=${paths.lock}`,
      `spool-path=${paths.spool}`,
      'log-level-console=warn',
      'log-level-file=info',
      '',
      `[${TARGET}]`,
      `pg1-path=${pg.dataDir}`,
      `pg1-port=${pg.port}`,
      `pg1-socket-path=${socketDir}`,
      `pg1-user=${pg.user}`,
      '',
    ].join('\n'),
  );
  await chown(backrestConfig, owner.uid, owner.gid);
  await pgbackrest(['stanza-create']);
  await setArchiveCommand(`${PGBACKREST} --config=${backrestConfig} --stanza=${TARGET} archive-push %p`);
  try {
    await pgbackrest(['check']);
  } catch (error) {
    const [archiver] = await pg.query('SELECT * FROM pg_stat_archiver');
    const [{ archive_command }] = await pg.query('SHOW archive_command');
    // archive_command's own errors go to the server log; pushing the failed segment by hand shows them.
    if (archiver.last_failed_wal) {
      const segment = join(pg.dataDir, 'pg_wal', archiver.last_failed_wal);
      const push = await runProcess(PGBACKREST, [`--config=${backrestConfig}`, `--stanza=${TARGET}`, 'archive-push', segment], { cwd: pg.dataDir, ...asPostgres }).then((r) => r.stdout + r.stderr, (e) => e.message);
      console.error(`archive-push by hand: ${push}`);
    }
    throw new Error(`${error.message}\narchive_command: ${archive_command}\npg_stat_archiver: ${JSON.stringify(archiver)}`);
  }
}

/** Runs one pgbackrest command as the postgres user (libpq reads PGPASSWORD); resolves with its duration. */
async function pgbackrest(args, timeoutMs = 30 * 60_000) {
  const started = now();
  await runProcess(PGBACKREST, [`--config=${backrestConfig}`, `--stanza=${TARGET}`, ...args], {
    name: `pgbackrest ${args[args.length - 1]}`,
    cwd: backrestDir,
    env: { ...pgEnv, PGDATABASE: 'postgres' },
    ...asPostgres,
    timeoutMs,
  });
  return now() - started;
}

const pgBackRestBackup = () => pgbackrest(['--type=full', 'backup']);

let restoreCount = 0;
/** `pgbackrest restore` into a fresh directory, then PostgreSQL on it until promoted and accepting connections. */
async function pgBackRestRestore() {
  restoreCount += 1;
  const root = await mkdirForPostgres(join(dir, `pgbackrest-restore-${restoreCount}`), 0o755);
  const dataDir = await mkdirForPostgres(join(root, 'data'), 0o700);
  const sockets = await mkdirForPostgres(join(root, 'socket'), 0o700);
  try {
    const restoreMs = await pgbackrest([`--pg1-path=${dataDir}`, 'restore']);
    const port = await freePort();
    const started = now();
    // archive_mode=off: the copy must not push its new timeline into the source's stanza.
    const server = startProcess(
      POSTGRES,
      ['-D', dataDir, '-p', String(port), '-k', sockets, '-c', 'listen_addresses=127.0.0.1', '-c', 'archive_mode=off'],
      { name: 'postgres (pgbackrest restore)', cwd: root, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, ...asPostgres },
    );
    try {
      await server.waitForOutput(/database system is ready to accept connections/, 30 * 60_000);
      await waitUntilPromoted(port);
      const startMs = now() - started;
      return { restoreMs, startMs, totalMs: restoreMs + startMs };
    } finally {
      await server.stop({ signal: 'SIGINT', timeoutMs: 20_000 });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Polls until a server on `port` accepts a connection and is out of recovery. */
async function waitUntilPromoted(port, timeoutMs = 30 * 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pgClient.Client({ host: '127.0.0.1', port, user: pg.user, password: pg.password, database: 'postgres' });
    try {
      await client.connect();
      const { rows } = await client.query('SELECT pg_is_in_recovery() AS recovering');
      if (rows[0].recovering === false) return;
    } catch {
      // not up yet
    } finally {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline) throw new Error(`the server on port ${port} was not promoted within ${timeoutMs} ms`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Tidemark: pg-agent and its events

const keyHex = randomBytes(32).toString('hex');
let agent;
let agentCount = 0;
const rss = peakRssSampler();
cleanups.push(async () => {
  rss.stop();
});

async function startAgent({ baseBackup } = {}) {
  agentCount += 1;
  const configPath = join(dir, `tidemark-${agentCount}.yaml`);
  await writeFile(
    configPath,
    `nats:\n  url: ${nats.url}\nstorage:\n  type: fs\n  root: ${storageRoot}\n` +
      (encrypt ? `encryption:\n  keyEnv: BENCH_KEY\n` : '') +
      `defaults:\n  compression: zstd\n  encrypt: ${encrypt}\n  verify: false\n` +
      `pg:\n  workDir: ${workDir}\n  osUser: ${POSTGRES_OS_USER}\n` +
      `targets:\n  - name: ${TARGET}\n    engine: pg\n` +
      `    wal:\n      enabled: true\n      partialIntervalSeconds: 1\n` +
      // checkpoint fast in both: a spread one waits ~0.9 × checkpoint_timeout (30 min here) to start,
      // and pgBackRest runs with start-fast too.
      `    baseBackup:\n      tableChecksums: ${checksums}\n      checkpoint: fast\n` +
      (baseBackup ? `      maxRateKbps: ${baseBackup.maxRateKbps}\n      nice: ${baseBackup.nice}\n` : '') +
      `    postgres:\n      host: ${pg.host}\n      port: ${pg.port}\n      user: ${pg.user}\n      database: bench\n      passwordEnv: BENCH_PG_PASSWORD\n`,
  );
  const logPath = join(dir, `pg-agent-${agentCount}.log`);
  const log = openSync(logPath, 'a');
  const child = spawn(process.execPath, [join(repo, 'services/pg-agent/dist/main.js')], {
    env: { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: nats.url, BENCH_KEY: keyHex, BENCH_PG_PASSWORD: pg.password, TIDEMARK_HEALTH_PORT: String(await freePort()), TIDEMARK_LOG_LEVEL: 'info' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  agent = { child, logPath, exited };
  rss.add(child.pid);
  // Commands wait in JetStream, but a timed request must not include the agent's start-up.
  const deadline = Date.now() + 60_000;
  while (!(await readFile(logPath, 'utf8')).includes('pg-agent ready')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`pg-agent did not become ready; its log:\n${await agentLogTail()}`);
    await sleep(100);
  }
}

async function stopAgent() {
  if (!agent || agent.child.exitCode !== null) return;
  await rss.sample();
  agent.child.kill('SIGTERM');
  const exit = await Promise.race([agent.exited, sleep(20_000).then(() => undefined)]);
  if (exit === undefined) agent.child.kill('SIGKILL');
}
cleanups.push(stopAgent);

async function agentLogTail(lines = 30) {
  if (!agent) return '(no agent)';
  const text = await readFile(agent.logPath, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

const nc = await connect({ servers: nats.url });
cleanups.push(() => nc.close());
const js = nc.jetstream();
const commandHeaders = () => {
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  return h;
};

/** Resolves with {subject, event, at} for the first event on `subject` that `match` accepts; rejects on `fail`. */
function waitForEvent(subject, match, fail, timeoutMs = 60 * 60_000) {
  const sub = nc.subscribe(subject);
  const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
  const done = (async () => {
    for await (const m of sub) {
      const event = decode(m.data, m.headers);
      const failure = fail(m.subject, event);
      if (failure) throw new Error(`${m.subject}: ${JSON.stringify(failure)}\npg-agent log:\n${await agentLogTail()}`);
      if (match(m.subject, event)) return { subject: m.subject, event, at: now() };
    }
    throw new Error(`no matching event on ${subject} within ${timeoutMs} ms\npg-agent log:\n${await agentLogTail()}`);
  })();
  return done.finally(() => {
    clearTimeout(timer);
    sub.unsubscribe();
  });
}

let requestCount = 0;
/** A base backup through NATS; resolves with the time to artifact.stored and to backup.completed. */
async function tidemarkBackup() {
  requestCount += 1;
  const requestId = `bench-base-${requestCount}-${Date.now()}`;
  const mine = (event) => event.requestId === requestId;
  const stored = waitForEvent(`artifact.stored.pg.${TARGET}`, (_, e) => mine(e), () => undefined);
  const completed = waitForEvent(
    `backup.*.pg.${TARGET}`,
    (subject, e) => mine(e) && subject.startsWith('backup.completed'),
    (subject, e) => (mine(e) && subject.startsWith('backup.failed') && e.final ? e.error : undefined),
  );
  const started = now();
  await js.publish(subjects.backupRequested('pg', TARGET), encode({ requestId, kind: 'base' }), { headers: commandHeaders(), msgID: requestId });
  const [s, c] = await Promise.all([stored, completed]);
  return { storedMs: s.at - started, ms: c.at - started, storedBytes: c.event.storedBytes, artifactId: c.event.artifactId };
}

/** Point-in-time restore to "latest"; resolves with the wall time and the agent's restore.completed. */
async function tidemarkRestore() {
  requestCount += 1;
  const requestId = `bench-pitr-${requestCount}-${Date.now()}`;
  const mine = (event) => event.requestId === requestId;
  const completed = waitForEvent(
    `restore.*.pg.${TARGET}`,
    (subject, e) => mine(e) && subject.startsWith('restore.completed'),
    (subject, e) => (mine(e) && subject.startsWith('restore.failed') ? e.error : undefined),
  );
  const started = now();
  await js.publish(subjects.restoreRequested('pg', TARGET), encode({ requestId, pointInTime: { latest: true } }), { headers: commandHeaders(), msgID: requestId });
  const { event, at } = await completed;
  const ms = at - started;
  try {
    // The agent leaves the promoted server running for the operator; the benchmark stops it.
    const port = event.port;
    if (port !== undefined) await waitUntilPromoted(port, 10_000);
  } finally {
    if (event.dataDirectory) await stopServerIn(event.dataDirectory);
  }
  return { ms, event };
}

async function stopServerIn(dataDirectory) {
  await runProcess(PG_CTL, ['stop', '-D', dataDirectory, '-m', 'fast', '-w', '-t', '60'], { name: 'pg_ctl stop', env: { ...process.env, LC_ALL: 'C' }, ...asPostgres, timeoutMs: 90_000 }).catch(
    (error) => console.log(`# (stopping the restored server in ${dataDirectory}: ${error.message.split('\n')[0]})`),
  );
  await rm(dataDirectory, { recursive: true, force: true });
  await rm(`${dataDirectory}.socket`, { recursive: true, force: true }); // the restored server's socket directory
}

// ---------------------------------------------------------------------------------------------
// pgbench

/**
 * Starts pgbench with per-second progress; `tpsBetween(from, to)` is the mean TPS of the seconds
 * that lie inside a wall-clock window (Date.now() values). Runs until `seconds` or `stop()`.
 */
function startPgbench(seconds) {
  const samples = [];
  const child = spawn(PGBENCH, ['-c', '2', '-j', '2', '-T', String(seconds), '-P', '1', '--progress-timestamp', 'pgbench'], {
    env: pgEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let partial = '';
  const onData = (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      const m = /^progress: ([\d.]+) s, ([\d.]+) tps/.exec(line);
      if (m) samples.push({ at: Number(m[1]) * 1000, tps: Number(m[2]) });
      else tail = `${tail}\n${line}`.slice(-4000);
    }
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return {
    exited,
    tpsBetween(from, to) {
      const inside = samples.filter((s) => s.at - 1000 >= from && s.at <= to);
      if (inside.length === 0) throw new Error(`pgbench reported no whole second between the marks; its output:${tail}`);
      return { tps: inside.reduce((sum, s) => sum + s.tps, 0) / inside.length, seconds: inside.length };
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      await exited;
    },
  };
}

/**
 * TPS while `work` runs, and in the `referenceMs` just before it in the same pgbench run (after a
 * 3 s warm-up). The loss is taken against that paired reference rather than one baseline for
 * the whole run: on a shared machine the background load drifts between minutes.
 */
async function tpsDuring(work, referenceMs = 0) {
  const bench = startPgbench(3600);
  cleanups.push(() => bench.stop());
  try {
    await sleep(3000);
    const referenceFrom = Date.now();
    if (referenceMs > 0) await sleep(referenceMs);
    const from = Date.now();
    const result = await work();
    const to = Date.now();
    await sleep(1100); // the progress line of the last second
    const during = bench.tpsBetween(from, to);
    const reference = referenceMs > 0 ? bench.tpsBetween(referenceFrom, from) : undefined;
    const loss = reference ? (1 - during.tps / reference.tps) * 100 : undefined;
    return { ...during, reference, loss, result };
  } finally {
    await bench.stop();
  }
}
const describeTps = (run) => `${run.tps.toFixed(0)} TPS over ${run.seconds} s against ${run.reference.tps.toFixed(0)} TPS in the ${run.reference.seconds} s before → loss ${run.loss.toFixed(1)} %`;

// ---------------------------------------------------------------------------------------------
// WAL lag

/**
 * Collects wal.archived events, and samples pg_current_wal_lsn() every second; for each sample,
 * the time until an archived file's endLsn reached it is the data-loss window (RPO) at that moment.
 */
function watchWalLag() {
  const events = [];
  const sub = nc.subscribe(`wal.archived.pg.${TARGET}`);
  (async () => {
    for await (const m of sub) {
      const event = decode(m.data, m.headers);
      events.push({ at: now(), event, end: event.endLsn ? lsnValue(event.endLsn) : undefined });
    }
  })();
  const samples = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const at = now();
      const [{ lsn }] = await pg.query('SELECT pg_current_wal_lsn()::text AS lsn');
      samples.push({ at, lsn: lsnValue(lsn) });
      await sleep(Math.max(0, 1000 - (now() - at)));
    }
  })();
  return {
    /** Stops sampling; waits up to `graceMs` for the last samples to be archived, then summarises. */
    async finish(graceMs = 15_000) {
      sampling = false;
      await sampler;
      const last = samples[samples.length - 1];
      const deadline = now() + graceMs;
      while (last && !events.some((e) => e.end !== undefined && e.end >= last.lsn) && now() < deadline) await sleep(100);
      sub.unsubscribe();
      const window = samples.length > 0 ? { from: samples[0].at, to: samples[samples.length - 1].at } : { from: 0, to: 0 };
      const during = events.filter((e) => e.at >= window.from && e.at <= window.to + 1000);
      const lags = during.map((e) => e.event.lagSeconds).filter((v) => typeof v === 'number');
      let worstMs = 0;
      let uncovered = 0;
      for (const sample of samples) {
        const covering = events.find((e) => e.at >= sample.at && e.end !== undefined && e.end >= sample.lsn);
        if (covering) worstMs = Math.max(worstMs, covering.at - sample.at);
        else uncovered += 1;
      }
      return {
        events: during.length,
        kinds: Object.entries(during.reduce((acc, e) => ({ ...acc, [e.event.fileKind]: (acc[e.event.fileKind] ?? 0) + 1 }), {}))
          .map(([k, n]) => `${n} ${k}`)
          .join(', '),
        maxLagSeconds: lags.length > 0 ? Math.max(...lags) : NaN,
        medianLagSeconds: median(lags),
        samples: samples.length,
        worstMs,
        uncovered,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The run

try {
  await setArchiveCommand('/bin/true'); // no archive yet: the build's WAL would only fill pg_wal
  const db = await buildRagDatabase(pg, { gib: targetGiB, database: 'bench' });
  const [{ cluster }] = await pg.query(`SELECT sum(pg_database_size(datname))::bigint AS cluster FROM pg_database`);
  console.log(`# cluster size ${mib(Number(cluster))}; settings: shared_buffers 512MB, full_page_writes on, fsync off (testkit), archive_mode on`);

  await setUpPgBackRest();
  console.log(`# pgBackRest stanza "${TARGET}" created, archive_command = pgbackrest archive-push (compress-type=zst, process-max=2, start-fast)`);
  if (withTidemark) await startAgent();
  const pipeline = `zstd${encrypt ? ' + AES-256-GCM' : ''}${checksums ? ' + table checksums' : ''}`;
  if (withTidemark) console.log(`# pg-agent ready (WAL streaming on, partial segment every 1 s); Tidemark pipeline: ${pipeline}`);

  // 1. Full base backup, alternating so both find the same warm cache; the better of each.
  console.log(`\n## 1. full base backup to filesystem storage (${repeat} alternating runs each, the better counts)`);
  const tidemarkBackups = [];
  const backrestBackups = [];
  for (let i = 0; i < repeat; i += 1) {
    if (withTidemark) {
      const ours = await tidemarkBackup();
      tidemarkBackups.push(ours);
      console.log(`tidemark base backup #${i + 1} (${pipeline}): ${secs(ours.ms)} to backup.completed (artifact.stored at ${secs(ours.storedMs)}), stored ${mib(ours.storedBytes)}`);
    }
    const theirs = await pgBackRestBackup();
    backrestBackups.push(theirs);
    console.log(`pgbackrest backup --type=full #${i + 1}: ${secs(theirs)}`);
  }
  const bestTheirBackup = Math.min(...backrestBackups);
  const repoInfo = await runProcess(PGBACKREST, [`--config=${backrestConfig}`, `--stanza=${TARGET}`, 'info', '--output=json'], { env: pgEnv, ...asPostgres });
  const lastBackrest = JSON.parse(repoInfo.stdout)[0]?.backup?.at(-1);
  const backrestStored = lastBackrest?.info?.repository?.delta ?? lastBackrest?.info?.repository?.size;
  const theirBackupText = `pgbackrest ${secs(bestTheirBackup)} (zstd, stored ${backrestStored ? mib(backrestStored) : '?'})`;
  if (withTidemark) {
    const bestOurBackup = Math.min(...tidemarkBackups.map((b) => b.ms));
    report(`base backup: tidemark ${secs(bestOurBackup)} (${pipeline}, stored ${mib(tidemarkBackups.at(-1).storedBytes)}) vs ${theirBackupText} → ratio ${(bestOurBackup / bestTheirBackup).toFixed(2)}`);
  } else report(`base backup: ${theirBackupText}`);

  // 2. Restore to a promoted server.
  console.log(`\n## 2. restore to a promoted server (${repeat} alternating runs each, the better counts)`);
  const tidemarkRestores = [];
  const backrestRestores = [];
  for (let i = 0; i < repeat; i += 1) {
    if (withTidemark) {
      const ours = await tidemarkRestore();
      tidemarkRestores.push(ours);
      const rto = ours.event.rto;
      console.log(
        `tidemark point-in-time restore to latest #${i + 1}: ${secs(ours.ms)} to restore.completed` +
          (rto ? ` (rto: download ${secs(rto.downloadMs)}, replay ${secs(rto.replayMs)}, start ${secs(rto.startMs)}, total ${secs(rto.totalMs)}, ${rto.walFilesFetched ?? '?'} WAL files)` : ' (no rto reported)') +
          (ours.event.recoveredTo ? `, recovered to ${ours.event.recoveredTo.lsn} on timeline ${ours.event.recoveredTo.timeline}` : ''),
      );
    }
    const theirs = await pgBackRestRestore();
    backrestRestores.push(theirs);
    console.log(`pgbackrest restore #${i + 1}: ${secs(theirs.totalMs)} (restore ${secs(theirs.restoreMs)}, start until promoted ${secs(theirs.startMs)})`);
  }
  const bestTheirRestore = backrestRestores.reduce((a, b) => (b.totalMs < a.totalMs ? b : a));
  const theirRestoreText = `pgbackrest ${secs(bestTheirRestore.totalMs)} (restore ${secs(bestTheirRestore.restoreMs)} + start ${secs(bestTheirRestore.startMs)})`;
  if (withTidemark) {
    const bestOurRestore = tidemarkRestores.reduce((a, b) => (b.ms < a.ms ? b : a));
    const rto = bestOurRestore.event.rto;
    report(
      `restore to a promoted server: tidemark ${secs(bestOurRestore.ms)}` +
        (rto ? ` (download ${secs(rto.downloadMs)} + replay ${secs(rto.replayMs)} + start ${secs(rto.startMs)})` : '') +
        ` vs ${theirRestoreText} → ratio ${(bestOurRestore.ms / bestTheirRestore.totalMs).toFixed(2)}` +
        // rto.totalMs ends at promotion, like pgBackRest's figure; restore.completed adds the checks.
        (rto ? ` (${(rto.totalMs / bestTheirRestore.totalMs).toFixed(2)} to promotion, before Tidemark's checks)` : ''),
    );
  } else report(`restore to a promoted server: ${theirRestoreText}`);

  // 3 + 4. pgbench: baseline (with the WAL lag measured meanwhile), then during backups.
  console.log(`\n## 3. pgbench TPS (scale ${pgbenchScale}, -c 2 -j 2) and 4. WAL lag under that load`);
  await pg.createDatabase('pgbench');
  await runProcess(PGBENCH, ['-i', '-q', '-s', String(pgbenchScale), 'pgbench'], { name: 'pgbench -i', env: pgEnv, timeoutMs: 10 * 60_000 });
  await pg.query('CHECKPOINT');
  const lag = withTidemark ? watchWalLag() : undefined;
  const baseline = await tpsDuring(() => sleep(pgbenchSeconds * 1000));
  const wal = await lag?.finish();
  console.log(`baseline: ${baseline.tps.toFixed(0)} TPS over ${baseline.seconds} s`);
  if (wal) console.log(
    `WAL lag: ${wal.events} wal.archived events (${wal.kinds}); lagSeconds max ${wal.maxLagSeconds.toFixed(2)} s, median ${wal.medianLagSeconds.toFixed(2)} s; ` +
      `time until pg_current_wal_lsn() was archived, worst of ${wal.samples} samples: ${(wal.worstMs / 1000).toFixed(2)} s` +
      (wal.uncovered > 0 ? ` (${wal.uncovered} samples not archived within the grace period)` : ''),
  );
  const lossOf = (run) => run.loss.toFixed(1);
  const referenceMs = pgbenchSeconds * 1000;

  const lossLines = [];
  if (withTidemark) {
    await pg.query('CHECKPOINT');
    const unthrottled = await tpsDuring(tidemarkBackup, referenceMs);
    console.log(`tidemark base backup, unthrottled (${secs(unthrottled.result.ms)}): ${describeTps(unthrottled)}`);

    // A rate that stretches the backup to `slowdown` × its unthrottled time under this same load.
    const [{ size: clusterNow }] = await pg.query(`SELECT sum(pg_database_size(datname))::bigint AS size FROM pg_database`);
    const maxRateKbps = Math.max(32, Math.floor(Number(clusterNow) / 1024 / ((slowdown * unthrottled.result.ms) / 1000)));
    await stopAgent();
    await startAgent({ baseBackup: { maxRateKbps, nice: 19 } });
    await pg.query('CHECKPOINT');
    const throttled = await tpsDuring(tidemarkBackup, referenceMs);
    console.log(`tidemark base backup, throttled (maxRateKbps ${maxRateKbps} = ${(maxRateKbps / 1024).toFixed(1)} MiB/s, nice 19; ${secs(throttled.result.ms)}): ${describeTps(throttled)}`);
    lossLines.push(`tidemark unthrottled ${lossOf(unthrottled)} % (${secs(unthrottled.result.ms)})`, `tidemark throttled ${lossOf(throttled)} % (maxRateKbps ${maxRateKbps}, nice 19, ${secs(throttled.result.ms)})`);
  }

  await pg.query('CHECKPOINT');
  const theirs = await tpsDuring(pgBackRestBackup, referenceMs);
  console.log(`pgbackrest backup --type=full (${secs(theirs.result)}): ${describeTps(theirs)}`);

  lossLines.push(`pgbackrest ${lossOf(theirs)} % (${secs(theirs.result)})`);
  report(`pgbench baseline ${baseline.tps.toFixed(0)} TPS; loss during a backup (against the ${pgbenchSeconds} s just before it): ${lossLines.join(', ')}`);
  if (wal) report(`WAL lag (RPO) under pgbench: wal.archived lagSeconds max ${wal.maxLagSeconds.toFixed(2)} s, median ${wal.medianLagSeconds.toFixed(2)} s; worst time until the current WAL position was archived ${(wal.worstMs / 1000).toFixed(2)} s`);

  await stopAgent();
  if (withTidemark) report(`pg-agent peak RSS (VmHWM, whole run, ${agentCount} agent processes): ${rss.peakMiB().toFixed(0)} MiB`);

  console.log(`\n## summary (database ${(db.sizeBytes / 1024 ** 3).toFixed(2)} GiB with pgvector, cluster ${mib(Number(cluster))}; ${pipeline}; same machine, same run)`);
  for (const line of summary) console.log(`  ${line}`);
} catch (error) {
  console.error(`benchmark failed: ${error instanceof Error ? error.stack : error}`);
  console.error(`pg-agent log tail:\n${await agentLogTail(60)}`);
  const { readdir } = await import('node:fs/promises');
  for (const name of await readdir(join(backrestDir, 'log')).catch(() => [])) {
    const text = await readFile(join(backrestDir, 'log', name), 'utf8').catch(() => '');
    console.error(`pgbackrest ${name} tail:\n${text.trimEnd().split('\n').slice(-15).join('\n')}`);
  }
  process.exitCode = 1;
} finally {
  await cleanUp();
}

async function stopLeftoverServers(restoresDir) {
  const { readdir } = await import('node:fs/promises');
  const entries = await readdir(restoresDir).catch(() => []);
  for (const name of entries) {
    const dataDirectory = join(restoresDir, name);
    const pid = await readFile(join(dataDirectory, 'postmaster.pid'), 'utf8').catch(() => undefined);
    if (pid !== undefined) await stopServerIn(dataDirectory);
  }
}
