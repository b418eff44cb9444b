#!/usr/bin/env node
// Benchmark: the files agent against restic (Debian's `restic` package, installed by
// scripts/setup.sh) on the same generated tree of mixed documents, in the same run, on the same
// machine:
//   1. a first backup (restic: `backup`; Tidemark: backup.requested.files.<target> → files-agent
//      → chunks, packs, tree, manifest in filesystem storage → backup.completed);
//   2. a second backup after 1 % of the files changed and the three largest others grew;
//   3. a full restore of that second snapshot into a new directory;
// Reported as ratios to restic: times, CPU seconds (user + system, of the agent during the
// operation and of restic's process), the second backup's new bytes (repository growth) and the
// repository size, plus the files-agent's peak RSS (VmHWM) for each operation at two tree sizes,
// to show it does not grow with the tree. Each Tidemark operation runs in a fresh files-agent
// process, so each peak is that operation's own; its time runs from the command's publication to
// the completion event (the agent is already up, as a service is).
// Before each timed step, both sides get the same page cache: their input read in, nothing else.
// Both sides encrypt (restic always does; Tidemark zstd + AES-256-GCM) and compress (restic 0.14
// repository v2, compression auto; Tidemark zstd level 1). Restored trees are checked against the
// snapshot's tree by compareDirectoryWithTree (restic's too), after the timed part.
// Everything is written under one directory in --dir (default /var/tmp), removed at the end.
//
//   npm run build && node bench/files-restic.mjs [--gib 2] [--small-gib 0.5] [--dir /var/tmp] [--keep false] [--profile <dir>]
// BENCH_FAULTS=1 also prints each process's minor page faults and each agent thread's user and
// system CPU (where restore time goes: the kernel's file creation and writes, on this machine).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, lstat, rm, writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const bigGiB = Number(arg('gib', '2'));
const smallGiB = Number(arg('small-gib', '0.5'));
const keep = arg('keep', 'false') !== 'false';
const RESTIC = '/usr/bin/restic';
/** Writes a V8 CPU profile of each files-agent into this directory (open it in Chrome's DevTools). */
const profileDir = arg('profile', undefined);

const dir = await mkdtemp(join(arg('dir', '/var/tmp'), 'tidemark-files-bench-'));
// Every temp directory of this run (NATS's store, the testkit's) goes in here too: tmpdir() reads TMPDIR.
process.env.TMPDIR = dir;
const { startNats, freePort, buildTree, mutateTree, runProcess } = await import('@tidemark/testkit');
const { connect, headers } = await import('nats');
const { encode, decode, subjects, CONTENT_TYPE_HEADER, MSGPACK } = await import('@tidemark/contracts');
const { ArtifactStore, createFsBackend } = await import('@tidemark/storage');
const { keyRingOf } = await import('@tidemark/pipeline');
const { compareDirectoryWithTree } = await import('@tidemark/files');
const { committedTree, filesFactsOf } = await import('@tidemark/agent');
const { peakRssSampler } = await import('./lib/peak-rss.mjs');

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes) => `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
const ratio = (ours, theirs) => (theirs > 0 ? (ours / theirs).toFixed(2) : '—');

const KiB = 1024;
const MiB = 1024 ** 2;
/**
 * About `gib` GiB of documents: per GiB ≈ 10,000 office documents (1 KiB–256 KiB, 30 % of them
 * PDF-like incompressible), 80 PDFs and scans (256 KiB–16 MiB, incompressible), and two big files
 * (64–256 MiB: an archive and a text export, say).
 */
const treeSpec = (gib, seed) => ({
  seed,
  groups: [
    { under: 'documents', count: Math.round(10_000 * gib), minBytes: KiB, maxBytes: 256 * KiB, binaryFraction: 0.3 },
    { under: 'scans', count: Math.round(80 * gib), minBytes: 256 * KiB, maxBytes: 16 * MiB, binaryFraction: 1, perDirectory: 40 },
    { under: 'exports', count: Math.max(1, Math.round(2 * gib)), minBytes: 64 * MiB, maxBytes: 256 * MiB, binaryFraction: 0.5 },
  ],
  emptyDirectories: 3,
  symlinks: true,
  hardLinkGroups: 2,
});

/** Apparent bytes of every file under `root` (a repository or a storage root). */
async function bytesUnder(root) {
  let bytes = 0;
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) bytes += (await lstat(join(entry.parentPath ?? entry.path, entry.name))).size;
  }
  return bytes;
}

const cleanups = [];
let cleaningUp;
function cleanUp() {
  cleaningUp ??= (async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch((error) => console.error(`# cleanup: ${error.message}`));
    if (keep) console.log(`# kept ${dir}`);
    else await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  })();
  return cleaningUp;
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`# ${signal}: cleaning up`);
    cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// restic

const resticEnv = (repository) => ({
  ...process.env,
  RESTIC_REPOSITORY: repository,
  RESTIC_PASSWORD_FILE: join(dir, 'restic-password'),
  RESTIC_CACHE_DIR: join(dir, 'restic-cache'),
  HOME: dir,
});

/**
 * CPU seconds (user + system) from /proc/<pid>/stat: the process's own, or those of its children
 * that it waited for (restic, once it exited). Clock ticks are 100 a second on Linux.
 */
async function cpuSeconds(pid, whose = 'own') {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
  // After the command name: utime, stime are fields 14, 15; cutime, cstime 16, 17 (1-based, so 11..14 here).
  const [user, system] = whose === 'own' ? [fields[11], fields[12]] : [fields[13], fields[14]];
  if (process.env.BENCH_FAULTS) {
    console.log(`# ${pid} ${whose}: minor faults ${whose === 'own' ? fields[7] : fields[8]}, user ${user}, system ${system}`);
    if (whose === 'own') {
      const { readdir: list } = await import('node:fs/promises');
      for (const task of await list(`/proc/${pid}/task`)) {
        const stat = await readFile(`/proc/${pid}/task/${task}/stat`, 'utf8').catch(() => '');
        const comm = /\((.*)\)/.exec(stat)?.[1];
        const f = stat.replace(/^.*\) /, '').split(' ');
        if (Number(f[11]) + Number(f[12]) > 20) console.log(`#   thread ${comm}: user ${f[11]}, system ${f[12]}`);
      }
    }
  }
  return (Number(user) + Number(system)) / 100;
}

/** Runs restic; resolves with its duration, CPU seconds and its JSON summary line (if any). */
async function restic(repository, args, cwd = dir) {
  // restic's local cache (index and trees) is part of its input, as Tidemark's index files are of its storage.
  const inputs = { backup: [cwd], restore: [repository] }[args[0]] ?? [];
  await settleDisk(existsSync(resticEnv(repository).RESTIC_CACHE_DIR) ? [...inputs, resticEnv(repository).RESTIC_CACHE_DIR] : inputs);
  const started = now();
  const cpuBefore = await cpuSeconds('self', 'children');
  const result = await runProcess(RESTIC, args, { name: `restic ${args[0]}`, cwd, env: resticEnv(repository), timeoutMs: 60 * 60_000 });
  const ms = now() - started;
  const cpu = (await cpuSeconds('self', 'children')) - cpuBefore;
  const summary = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))
    .find((message) => message.message_type === 'summary');
  return { ms, cpu, summary };
}

// ---------------------------------------------------------------------------------------------
// Tidemark: a files-agent per operation, NATS, filesystem storage

const keyHex = randomBytes(32).toString('hex');
const keys = keyRingOf({ id: 'bench', key: Buffer.from(keyHex, 'hex') });
const nats = await startNats();
cleanups.push(() => nats.stop());
const nc = await connect({ servers: nats.url });
cleanups.push(() => nc.drain());
const js = nc.jetstream();
const rss = peakRssSampler();
cleanups.push(() => rss.stop());

let agentCount = 0;
/** A fresh files-agent for `target` reading `treeRoot`; resolves once it is ready, with a stop() that returns its peak RSS in MiB. */
async function startAgent(target, treeRoot, storageRoot) {
  agentCount += 1;
  const configPath = join(dir, `tidemark-${agentCount}.yaml`);
  await writeFile(
    configPath,
    `nats:\n  url: ${nats.url}\nstorage:\n  type: fs\n  root: ${storageRoot}\n` +
      `encryption:\n  keyEnv: BENCH_KEY\n` +
      `defaults:\n  compression: zstd\n  encrypt: true\n  verify: false\n` +
      `files:\n  workDir: ${join(dir, 'files-work')}\n` +
      `targets:\n  - name: ${target}\n    engine: files\n    files:\n      source:\n        kind: directory\n        path: ${treeRoot}\n` +
      (process.env.BENCH_LEVEL ? `    compressionLevel: ${Number(process.env.BENCH_LEVEL)}\n` : ''),
  );
  const logPath = join(dir, `files-agent-${agentCount}.log`);
  const log = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]), join(repo, 'services/files-agent/dist/main.js')], {
    env: { ...process.env, TIDEMARK_CONFIG: configPath, TIDEMARK_NATS_URL: nats.url, BENCH_KEY: keyHex, TIDEMARK_HEALTH_PORT: String(await freePort()), TIDEMARK_LOG_LEVEL: 'info' },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const logTail = async () => (await readFile(logPath, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-30).join('\n');
  const agent = {
    pid: child.pid,
    logTail,
    async stop() {
      const peak = peakRssSampler();
      peak.add(child.pid);
      await peak.sample();
      peak.stop();
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        if ((await Promise.race([exited, sleep(20_000).then(() => undefined)])) === undefined) child.kill('SIGKILL');
      }
      return peak.peakMiB();
    },
  };
  cleanups.push(() => agent.stop());
  rss.add(child.pid);
  // Commands wait in JetStream, but a timed request must not include the agent's start-up.
  const deadline = Date.now() + 120_000;
  while (!(await readFile(logPath, 'utf8')).includes('files-agent ready')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`files-agent did not become ready; its log:\n${await logTail()}`);
    await sleep(100);
  }
  return agent;
}

/** Resolves with {subject, event, at} for the first event on `subject` of `requestId` that ends the job. */
function waitForEnd(subject, requestId, agent) {
  const sub = nc.subscribe(subject);
  return (async () => {
    for await (const m of sub) {
      const event = decode(m.data, m.headers);
      if (event.requestId !== requestId) continue;
      if (m.subject.includes('.completed.')) return { event, at: now() };
      if (m.subject.includes('.failed.') && event.final !== false) throw new Error(`${m.subject}: ${JSON.stringify(event.error)}\nfiles-agent log:\n${await agent.logTail()}`);
    }
    throw new Error(`${subject}: the subscription ended`);
  })().finally(() => sub.unsubscribe());
}

/**
 * The same page cache for both sides before each timed step: what the previous operation left
 * dirty is written back (otherwise the kernel flushes one side's gigabyte during the other's run),
 * the cache is emptied, and the step's input (the tree for a backup, the repository for a restore)
 * is read into it. Before, whichever side ran second found its input evicted by the other's
 * writes: this machine reclaims page cache beyond about 2.7 GB. Without the right to drop caches
 * (not root), only the write-back and the read happen.
 */
async function settleDisk(inputs) {
  await runProcess('sync', [], { name: 'sync' });
  await writeFile('/proc/sys/vm/drop_caches', '1').catch(() => undefined);
  for (const input of inputs) {
    await runProcess('sh', ['-c', 'find . -type f -print0 | xargs -0 -r cat > /dev/null'], { name: 'read the input into the page cache', cwd: input });
  }
}

let requestCount = 0;
/** One timed operation in a fresh agent: 'backup' or 'restore' (of `artifactId` into `intoDirectory`). */
async function tidemark(operation, target, treeRoot, storageRoot, message = {}) {
  const agent = await startAgent(target, treeRoot, storageRoot);
  requestCount += 1;
  const requestId = `bench-${operation}-${requestCount}-${Date.now()}`;
  const h = headers();
  h.set(CONTENT_TYPE_HEADER, MSGPACK);
  const end = waitForEnd(`${operation}.*.files.${target}`, requestId, agent);
  await settleDisk([operation === 'backup' ? treeRoot : storageRoot]);
  const started = now();
  const cpuBefore = await cpuSeconds(agent.pid);
  const subject = operation === 'backup' ? subjects.backupRequested('files', target) : subjects.restoreRequested('files', target);
  await js.publish(subject, encode({ requestId, ...message }), { headers: h, msgID: requestId });
  const { event, at } = await end;
  const cpu = (await cpuSeconds(agent.pid)) - cpuBefore;
  const peakMiB = await agent.stop();
  return { ms: at - started, cpu, event, peakMiB };
}

// ---------------------------------------------------------------------------------------------
// One tree: both tools, the same operations

await writeFile(join(dir, 'restic-password'), randomBytes(24).toString('hex'));

/** Runs the comparison on a fresh tree of about `gib` GiB; `full` adds the second backup. */
async function compare(gib, label) {
  const work = join(dir, label);
  const treeRoot = join(work, 'tree');
  const storageRoot = join(work, 'tidemark-storage');
  const resticRepo = join(work, 'restic-repo');
  const target = `bench-${label}`;
  let started = now();
  const tree = await buildTree(treeRoot, treeSpec(gib, `files-restic-${label}`));
  console.log(`# ${label}: tree of ${tree.files.length} files, ${mib(tree.bytes)}, built in ${secs(now() - started)}`);
  await restic(resticRepo, ['init', '--repository-version', '2']);

  const result = { label, files: tree.files.length, bytes: tree.bytes };
  result.resticFirst = await restic(resticRepo, ['backup', '--json', '--quiet', '--host', 'bench', '.'], treeRoot);
  result.resticFirstRepo = await bytesUnder(resticRepo);
  console.log(`restic backup #1: ${secs(result.resticFirst.ms)}, repository ${mib(result.resticFirstRepo)}`);
  result.tidemarkFirst = await tidemark('backup', target, treeRoot, storageRoot);
  result.tidemarkFirstRepo = await bytesUnder(storageRoot);
  console.log(`tidemark backup #1: ${secs(result.tidemarkFirst.ms)}, storage ${mib(result.tidemarkFirstRepo)}, files-agent peak RSS ${result.tidemarkFirst.peakMiB.toFixed(0)} MiB`);

  started = now();
  const mutation = await mutateTree(treeRoot, { files: tree.files, changeFraction: 0.01, grow: 3, growBytes: 4 * MiB, seed: `files-restic-${label}-second` });
  console.log(`# ${label}: ${mutation.changed.length} files changed, ${mutation.grown.length} grew by 4 MiB (${secs(now() - started)})`);
  result.resticSecond = await restic(resticRepo, ['backup', '--json', '--quiet', '--host', 'bench', '.'], treeRoot);
  result.resticSecondRepo = await bytesUnder(resticRepo);
  console.log(`restic backup #2: ${secs(result.resticSecond.ms)}, repository +${mib(result.resticSecondRepo - result.resticFirstRepo)} (data_added ${mib(result.resticSecond.summary?.data_added ?? NaN)})`);
  result.tidemarkSecond = await tidemark('backup', target, treeRoot, storageRoot);
  result.tidemarkSecondRepo = await bytesUnder(storageRoot);
  const manifest = await new ArtifactStore(await createFsBackend({ root: storageRoot })).readManifest('files', target, result.tidemarkSecond.event.artifactId);
  result.secondFacts = filesFactsOf(manifest);
  console.log(
    `tidemark backup #2: ${secs(result.tidemarkSecond.ms)}, storage +${mib(result.tidemarkSecondRepo - result.tidemarkFirstRepo)} (new chunks ${mib(result.secondFacts.newStoredBytes)} stored, ${result.secondFacts.unchangedFiles} files not read; tree: ${result.secondFacts.tree?.newSegments} of ${result.secondFacts.tree?.segments} segments new, ${mib(result.secondFacts.tree?.newStoredBytes ?? NaN)}), peak RSS ${result.tidemarkSecond.peakMiB.toFixed(0)} MiB`,
  );

  const resticRestore = join(work, 'restic-restore');
  result.resticRestore = await restic(resticRepo, ['restore', 'latest', '--target', resticRestore]);
  console.log(`restic restore: ${secs(result.resticRestore.ms)}`);
  const tidemarkRestore = join(work, 'tidemark-restore');
  result.tidemarkRestore = await tidemark('restore', target, treeRoot, storageRoot, { artifactId: result.tidemarkSecond.event.artifactId, intoDirectory: tidemarkRestore });
  console.log(`tidemark restore: ${secs(result.tidemarkRestore.ms)}, peak RSS ${result.tidemarkRestore.peakMiB.toFixed(0)} MiB`);

  // Not timed: both restores hold what the snapshot holds (restic's owners and mtimes are its own business).
  const store = new ArtifactStore(await createFsBackend({ root: storageRoot }));
  for (const [who, restored] of [['tidemark', tidemarkRestore], ['restic', resticRestore]]) {
    const comparison = await compareDirectoryWithTree(restored, committedTree(store, manifest, keys), { mtimes: who === 'tidemark' });
    const verdict = comparison.ok ? 'identical' : `${comparison.differenceCount} differences, first: ${JSON.stringify(comparison.differences.slice(0, 3))}`;
    console.log(`# ${who} restore against the snapshot's tree: ${comparison.filesCompared} files, ${mib(comparison.bytesCompared)}: ${verdict}`);
  }
  await rm(work, { recursive: true, force: true });
  return result;
}

try {
  console.log(`# restic: ${(await runProcess(RESTIC, ['version'], { name: 'restic version' })).stdout.trim()}; node ${process.version}; load ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`);
  const results = [];
  for (const [gib, label] of [[smallGiB, 'small'], [bigGiB, 'big']]) results.push(await compare(gib, label));
  console.log(`# load after: ${(await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')}`);

  const rows = [];
  for (const r of results) {
    const resticNew = r.resticSecondRepo - r.resticFirstRepo;
    const tidemarkNew = r.tidemarkSecondRepo - r.tidemarkFirstRepo;
    const size = `${mib(r.bytes)}, ${r.files} files`;
    rows.push(
      [`first backup (${size})`, secs(r.tidemarkFirst.ms), secs(r.resticFirst.ms), ratio(r.tidemarkFirst.ms, r.resticFirst.ms)],
      ['second backup (1 % changed, 3 grew)', secs(r.tidemarkSecond.ms), secs(r.resticSecond.ms), ratio(r.tidemarkSecond.ms, r.resticSecond.ms)],
      ['second backup: repository growth', mib(tidemarkNew), mib(resticNew), ratio(tidemarkNew, resticNew)],
      ['full restore', secs(r.tidemarkRestore.ms), secs(r.resticRestore.ms), ratio(r.tidemarkRestore.ms, r.resticRestore.ms)],
      ['repository after both backups', mib(r.tidemarkSecondRepo), mib(r.resticSecondRepo), ratio(r.tidemarkSecondRepo, r.resticSecondRepo)],
      ['CPU seconds: backup #1 / #2 / restore', [r.tidemarkFirst, r.tidemarkSecond, r.tidemarkRestore].map((op) => op.cpu.toFixed(1)).join(' / '), [r.resticFirst, r.resticSecond, r.resticRestore].map((op) => op.cpu.toFixed(1)).join(' / '), ratio(r.tidemarkFirst.cpu + r.tidemarkRestore.cpu, r.resticFirst.cpu + r.resticRestore.cpu)],
      ['files-agent peak RSS: backup #1 / #2 / restore', `${r.tidemarkFirst.peakMiB.toFixed(0)} / ${r.tidemarkSecond.peakMiB.toFixed(0)} / ${r.tidemarkRestore.peakMiB.toFixed(0)} MiB`, '', ''],
    );
  }
  console.log('\n| measure | Tidemark | restic | ratio |\n|---|---|---|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
} finally {
  await cleanUp();
}
