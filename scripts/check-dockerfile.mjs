#!/usr/bin/env node
// Runs the Dockerfile's own build and runtime steps without Docker (CI cannot run it here), in a
// scratch copy, so the image cannot silently stop building: every instruction is read from the
// Dockerfile itself and carried out in order (COPY honouring .dockerignore, COPY --from, WORKDIR,
// ENV, RUN through /bin/sh -c). Then the runtime stage's tree is checked: no dev dependencies
// (`npm ls --omit=dev` clean; no typescript, vitest, testcontainers, s3rver, rollup or testkit),
// and every service's main.js loads (it stops at its configuration, not at a missing module).
//
// What it cannot do here, it says it skips: RUN lines that install system packages with apt-get
// (the build stage's compilers must then already be on this machine: they are checked), and USER
// (the steps run as whoever runs this).
//
//   node scripts/check-dockerfile.mjs [--keep]     (run by .ci/run; --keep leaves the scratch copy)
import { readFileSync, mkdirSync, cpSync, statSync, readdirSync, existsSync, rmSync, mkdtempSync, lstatSync } from 'node:fs';
import { join, resolve, dirname, basename, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';

const context = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const scratch = mkdtempSync(join(tmpdir(), 'tidemark-dockerfile-'));
const say = (msg) => console.log(`check-dockerfile: ${msg}`);
const failures = [];
function die(msg) {
  console.error(`check-dockerfile: FAILED: ${msg}`);
  console.error(`check-dockerfile: the scratch copy is kept in ${scratch}`);
  process.exit(1);
}

// ---- the Dockerfile, as instructions (continuations joined, comments dropped)
function instructions(text) {
  const result = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (pending !== '' && line.startsWith('#')) continue; // comments inside a continuation
    if (line.endsWith('\\')) { pending += line.slice(0, -1) + ' '; continue; }
    const full = (pending + line).trim();
    pending = '';
    const [, keyword, rest] = /^(\S+)\s*(.*)$/s.exec(full);
    result.push({ keyword: keyword.toUpperCase(), rest });
  }
  return result;
}

// ---- .dockerignore (the subset of its syntax this repository uses: globs with * and **)
function ignoreMatcher() {
  const file = join(context, '.dockerignore');
  const patterns = existsSync(file) ? readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')) : [];
  if (patterns.some((p) => p.startsWith('!'))) die('.dockerignore uses ! exceptions, which this check does not implement');
  const regexes = patterns.map((p) => new RegExp('^' + posix.normalize(p).replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '\u0000').replace(/\*\*/g, '.*').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '(?:.*/)?') + '$'));
  return (relativePath) => regexes.some((r) => r.test(relativePath));
}
const ignored = ignoreMatcher();

/** Docker's COPY: a directory's contents, or a file; into dest (a directory when it ends with / or there are several sources). */
function copyInto(sources, dest, fromRoot, honourIgnore) {
  const intoDir = dest.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    const from = join(fromRoot, source);
    if (!existsSync(from)) die(`COPY ${source}: not found in ${fromRoot === context ? 'the build context' : 'the source stage'}`);
    const isDir = statSync(from).isDirectory();
    // A directory's contents land in dest itself; a file lands in dest, or in it when dest is a directory.
    const target = isDir || !intoDir ? dest : join(dest, basename(source));
    mkdirSync(isDir ? target : dirname(target), { recursive: true });
    cpSync(from, target, {
      recursive: true,
      dereference: false,
      verbatimSymlinks: true,
      filter: (path) => {
        if (!honourIgnore) return true;
        const rel = posix.relative(context, path.split('\\').join('/'));
        return rel === '' || !ignored(rel);
      },
    });
  }
}

// ---- carry the instructions out
const dockerfile = instructions(readFileSync(join(context, 'Dockerfile'), 'utf8'));
const stages = new Map(); // name → { root, workdir, env }
let stage;
const args = {};
const inStage = (path) => join(stage.root, path.startsWith('/') ? path : join(stage.workdir, path));

for (const { keyword, rest } of dockerfile) {
  switch (keyword) {
    case 'ARG': {
      const [name, value] = rest.split('=');
      args[name] = value;
      break;
    }
    case 'FROM': {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const name = match[2] ?? `stage${stages.size}`;
      const root = join(scratch, name);
      mkdirSync(root, { recursive: true });
      stage = { name, root, workdir: '/', env: {} };
      stages.set(name, stage);
      say(`FROM ${match[1].replace(/\$\{(\w+)\}/g, (_, a) => args[a] ?? '')} AS ${name} → ${root}`);
      break;
    }
    case 'WORKDIR':
      stage.workdir = posix.resolve(stage.workdir, rest);
      mkdirSync(inStage('.'), { recursive: true });
      break;
    case 'ENV':
      for (const [, name, value] of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) stage.env[name] = value.replace(/^"|"$/g, '');
      break;
    case 'COPY': {
      const words = rest.split(/\s+/);
      const from = words[0].startsWith('--from=') ? words.shift().slice('--from='.length) : undefined;
      const dest = words.pop();
      const destPath = inStage(dest) + (dest.endsWith('/') ? '/' : '');
      if (from === undefined) copyInto(words, destPath, context, true);
      else {
        const source = stages.get(from) ?? die(`COPY --from=${from}: no such stage`);
        copyInto(words.map((w) => w.replace(/^\//, '')), destPath, source.root, false);
      }
      break;
    }
    case 'RUN': {
      if (/\bapt-get\b/.test(rest)) {
        say(`RUN skipped (installs system packages with apt-get, which this check does not do to the machine): ${rest.slice(0, 100)}…`);
        if (stage.name === 'build') {
          for (const tool of ['python3', 'make', 'g++']) {
            if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) die(`${tool} is missing here, and the build stage's apt-get line installs it: apt-get install -y ${tool}`);
          }
        }
        break;
      }
      say(`RUN ${rest}`);
      const started = Date.now();
      const run = spawnSync('/bin/sh', ['-c', rest], { cwd: inStage('.'), stdio: 'inherit', env: { ...process.env, ...stage.env } });
      if (run.status !== 0) die(`RUN in stage ${stage.name} exited ${run.status ?? run.signal}: ${rest}`);
      say(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      break;
    }
    case 'USER':
      say(`USER ${rest} skipped: the steps run as ${process.getuid?.() === 0 ? 'root' : 'this user'}`);
      break;
    case 'EXPOSE': case 'ENTRYPOINT': case 'CMD': case 'LABEL': case 'HEALTHCHECK':
      break;
    default:
      die(`${keyword} is not an instruction this check knows: teach scripts/check-dockerfile.mjs about it`);
  }
}

// ---- the manifests layer names every workspace (a missing one makes npm ci refuse the lock file)
const workspaces = JSON.parse(readFileSync(join(context, 'package.json'), 'utf8')).workspaces;
const copied = dockerfile.filter((i) => i.keyword === 'COPY').flatMap((i) => i.rest.split(/\s+/).slice(0, -1));
for (const ws of workspaces) {
  if (!copied.includes(`${ws}/package.json`)) failures.push(`the Dockerfile does not COPY ${ws}/package.json before npm ci`);
}

// ---- the runtime stage's tree
const runtime = [...stages.values()].at(-1);
const app = join(runtime.root, runtime.workdir);
const runtimeEnv = { ...process.env, ...runtime.env };
say(`checking the runtime tree in ${app}`);
// One problem is intended: @qdrant/js-client-rest names typescript as a peer, for its type
// declarations only (its code never loads it: proven below by constructing a client), so the
// build prunes it with --legacy-peer-deps and npm ls reports it missing. Any other problem fails.
const intendedProblems = [/^npm error missing: typescript@\S+, required by @qdrant\/js-client-rest@/];
const ls = spawnSync('npm', ['ls', '--omit=dev', '--all'], { cwd: app, env: runtimeEnv, encoding: 'utf8' });
const lsProblems = ls.stderr.split('\n').filter((l) => /^npm error (missing|invalid|extraneous|peer)/.test(l) && !intendedProblems.some((r) => r.test(l)));
if (ls.status !== 0 && (lsProblems.length > 0 || !/ELSPROBLEMS/.test(ls.stderr))) failures.push(`npm ls --omit=dev is not clean:\n${(lsProblems.length > 0 ? lsProblems : ls.stderr.split('\n')).slice(0, 20).join('\n')}`);
else say(`npm ls --omit=dev: clean${ls.status === 0 ? '' : ' but for the intended missing typescript peer of @qdrant/js-client-rest'}`);
const qdrant = spawnSync(process.execPath, ['--input-type=module', '-e', "const { QdrantClient } = await import('@qdrant/js-client-rest'); new QdrantClient({ url: 'http://127.0.0.1:1' });"], { cwd: join(app, 'libs', 'qdrant'), env: runtimeEnv, encoding: 'utf8' });
if (qdrant.status !== 0) failures.push(`@qdrant/js-client-rest does not load without typescript: ${qdrant.stderr.split('\n').slice(0, 3).join(' ')}`);

const devOnly = ['typescript', 'vitest', 'testcontainers', 's3rver', 'rollup', 'vite', '@tidemark/testkit'];
function findPackages(dir, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
    const path = join(dir, entry.name);
    if (entry.name.startsWith('@')) { findPackages(path, found); continue; }
    const name = posix.relative(join(app, 'node_modules'), path).split('node_modules/').at(-1);
    if (devOnly.includes(name)) found.push(posix.relative(app, path));
    if (!lstatSync(path).isSymbolicLink() && existsSync(join(path, 'node_modules'))) findPackages(join(path, 'node_modules'), found);
  }
  return found;
}
const present = findPackages(join(app, 'node_modules'));
if (present.length > 0) failures.push(`dev-only packages in the runtime tree: ${present.join(', ')}`);
if (existsSync(join(app, 'libs', 'testkit'))) failures.push('libs/testkit is in the runtime tree');

// Each service must get as far as its configuration (absent here), not stop at a missing module.
const missingModule = /ERR_MODULE_NOT_FOUND|Cannot find (module|package)|ERR_DLOPEN_FAILED|ERR_REQUIRE_ESM/;
const serviceMains = readdirSync(join(app, 'services')).map((s) => `services/${s}/dist/main.js`);
for (const main of serviceMains) {
  const probe = spawnSync(process.execPath, [main], { cwd: app, env: { ...runtimeEnv, TIDEMARK_CONFIG: join(scratch, 'no-such-config.yaml') }, encoding: 'utf8', timeout: 30_000 });
  const output = `${probe.stdout}${probe.stderr}`;
  if (missingModule.test(output)) failures.push(`node ${main} cannot load: ${output.split('\n').find((l) => missingModule.test(l))}`);
  else if (probe.status === 0 || !/CONFIG_INVALID/.test(output)) failures.push(`node ${main} did not stop at its missing configuration (exit ${probe.status ?? probe.signal}): ${output.slice(0, 300)}`);
  else say(`node ${main}: loads, stops at the missing configuration`);
}
const cli = spawnSync(process.execPath, ['cli/dist/main.js', '--help'], { cwd: app, env: runtimeEnv, encoding: 'utf8', timeout: 30_000 });
if (cli.status !== 0) failures.push(`node cli/dist/main.js --help (the image's CMD) exited ${cli.status}: ${cli.stderr.slice(0, 300)}`);
else say('node cli/dist/main.js --help: ok');
// zstd-napi's binding was compiled in the build stage and must load from the runtime tree.
const zstd = spawnSync(process.execPath, ['-e', "require('zstd-napi')"], { cwd: join(app, 'libs', 'pipeline'), env: runtimeEnv, encoding: 'utf8' });
if (zstd.status !== 0) failures.push(`zstd-napi does not load in the runtime tree: ${zstd.stderr.split('\n').slice(0, 3).join(' ')}`);

if (failures.length > 0) {
  for (const failure of failures) console.error(`check-dockerfile: FAILED: ${failure}`);
  console.error(`check-dockerfile: the scratch copy is kept in ${scratch}`);
  process.exit(1);
}
if (!keep) rmSync(scratch, { recursive: true, force: true });
else say(`the scratch copy is kept in ${scratch}`);
say('passed: the build and runtime steps run, the runtime tree has no dev dependencies, every service loads');
