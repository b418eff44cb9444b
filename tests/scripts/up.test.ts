// scripts/up.mjs when start-up fails: it says why in the tool's own words and leaves nothing
// running (no orphan nats-server to answer the next run), nor initdb's password file behind.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, freePortRange } from '@tidemark/testkit';

/** scripts/up.mjs starts this many services, each with a health port from TIDEMARK_HEALTH_PORT_BASE up. */
const SERVICES_IN_UP = 7;

const upScript = new URL('../../scripts/up.mjs', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listening(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return { server, port: (server.address() as { port: number }).port };
}

/** A home under a 0700 parent, as /root is. */
function privateHome(): string {
  const parent = mkdtempSync(join(tmpdir(), 'tidemark-up-'));
  cleanups.push(() => rmSync(parent, { recursive: true, force: true }));
  // Not named .tidemark: a printed ".tidemark/logs" can then only be the old hard-coded path.
  return join(parent, 'clone', 'tidemark-home');
}

/** Processes whose command line names the path (what up.mjs started for that home). */
function processesNaming(path: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (args.includes(path) && !args.includes('vitest')) found.push(`${pid} ${args}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function runUp(home: string, env: Record<string, string>) {
  const ports = { TIDEMARK_NATS_PORT: String(await freePort()), TIDEMARK_PG_PORT: String(await freePort()), TIDEMARK_HEALTH_PORT_BASE: String(await freePortRange(SERVICES_IN_UP)) };
  const result = spawnSync(process.execPath, [upScript], { env: { ...process.env, TIDEMARK_HOME: home, ...ports, ...env }, encoding: 'utf8', timeout: 90_000 });
  return { ...result, output: `${result.stdout}${result.stderr}` };
}

describe('scripts/up.mjs', () => {
  it('names a port that is already in use and starts nothing', async () => {
    const home = privateHome();
    const { port } = await listening();
    const result = await runUp(home, { TIDEMARK_PG_PORT: String(port) });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`port ${port} (PostgreSQL) is already in use`);
    expect(result.stderr).toContain('TIDEMARK_PG_PORT');
    expect(processesNaming(home)).toEqual([]);
  });

  it.runIf(isRoot)("shows initdb's own error, stops the NATS server it started, and leaves no password file", async () => {
    const home = privateHome();
    // As root, the cluster lives in /var/lib/tidemark/<sha256(home)[:16]> (up.mjs's postgresStateDir):
    // a stray file there makes initdb refuse.
    const stateDir = join('/var/lib/tidemark', createHash('sha256').update(home).digest('hex').slice(0, 16));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    mkdirSync(join(stateDir, 'pg'), { recursive: true });
    writeFileSync(join(stateDir, 'pg', 'stray'), 'not a cluster');

    const result = await runUp(home, {});
    expect(result.status).toBe(1);
    expect(result.output).toContain('NATS with JetStream');
    expect(result.stderr).toMatch(/initdb failed \(exit 1\):\ninitdb: error: directory "[^"]+" exists but is not empty/);
    expect(result.stderr).not.toContain('stderr: null');
    expect(processesNaming(home)).toEqual([]);
    expect(existsSync(join(stateDir, '.initdb-pw'))).toBe(false);
    expect(existsSync(join(home, '.initdb-pw'))).toBe(false);
    // What was there before is not up.mjs's to delete.
    expect(existsSync(join(stateDir, 'pg', 'stray'))).toBe(true);
  });

  it.runIf(isRoot)('starts from a home under a 0700 parent, prints paths under TIDEMARK_HOME, and Ctrl-C leaves nothing', async () => {
    const home = privateHome();
    const stateDir = join('/var/lib/tidemark', createHash('sha256').update(home).digest('hex').slice(0, 16));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const ports = { TIDEMARK_NATS_PORT: String(await freePort()), TIDEMARK_PG_PORT: String(await freePort()), TIDEMARK_HEALTH_PORT_BASE: String(await freePortRange(SERVICES_IN_UP)) };
    const up = spawn(process.execPath, [upScript], { env: { ...process.env, TIDEMARK_HOME: home, ...ports }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => up.once('exit', (code) => resolve(code)));
    // On a failed assertion: the same Ctrl-C, so that the test leaves nothing running either.
    cleanups.push(async () => {
      if (up.exitCode === null && up.signalCode === null) {
        up.kill('SIGINT');
        await exited;
      }
    });
    let output = '';
    up.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    up.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 90_000;
    while (!output.includes('[tidemark up] ready') && up.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect(output).toContain('[tidemark up] ready');

    expect(output).toContain(`cluster in ${join(stateDir, 'pg')}`);
    expect(existsSync(join(home, 'pg'))).toBe(false);
    expect(output).toContain(`log ${join(home, 'logs', 'pg-agent.log')}`);
    expect(output).not.toContain('.tidemark/logs');
    expect(readFileSync(join(home, 'tidemark.yaml'), 'utf8')).toContain(`workDir: ${join(stateDir, 'work')}`);
    expect(readFileSync(join(stateDir, 'TIDEMARK_HOME'), 'utf8').trim()).toBe(home);

    up.kill('SIGINT');
    expect(await exited).toBe(0);
    expect([...processesNaming(home), ...processesNaming(stateDir)]).toEqual([]);
  });
});
