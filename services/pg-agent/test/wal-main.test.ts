// pg-agent's main wiring of WAL archiving, as a real process with real NATS, PostgreSQL and fs
// storage: an archiver per target with wal.enabled, wal.archived on the WAL stream, a health
// check per target, an unreachable target that does not stop the agent, and a SIGTERM that
// stops pg_receivewal cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode } from '@tidemark/contracts';
import { freePort, makeTempDir, removeTempDir, startNats, startPostgres, type NatsTestServer, type PostgresServer, processesMentioning } from '@tidemark/testkit';

const MAIN = resolve(import.meta.dirname, '../dist/main.js');

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('pg-agent main: wal archiving wiring', () => {
  let nats: NatsTestServer;
  let pg: PostgresServer;
  let dir: string;
  let nc: NatsConnection;
  let agent: ChildProcess | undefined;
  let output = '';
  const events: { subject: string; data: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    [nats, pg] = await Promise.all([startNats(), startPostgres()]);
    dir = await makeTempDir('tidemark-wal-main-');
    await chmod(dir, 0o711);
    nc = await connect({ servers: nats.url });
    const sub = nc.subscribe('wal.>');
    void (async () => {
      for await (const message of sub) events.push({ subject: message.subject, data: decode(message.data) as Record<string, unknown> });
    })();
  });

  afterAll(async () => {
    agent?.kill('SIGKILL');
    await nc?.close();
    await Promise.all([nats?.stop(), pg?.stop()]);
    if (dir) await removeTempDir(dir);
  });

  it('archives a running target, survives an unreachable one, reports health, and stops pg_receivewal on SIGTERM', async () => {
    const closedPort = await freePort();
    const yaml = `
nats: { url: ${nats.url} }
storage: { type: fs, root: ${join(dir, 'storage')} }
defaults: { compression: zstd, encrypt: false }
pg: { workDir: ${join(dir, 'pg')} }
targets:
  - name: main
    engine: pg
    postgres: { host: ${pg.host}, port: ${pg.port}, user: ${pg.user}, database: postgres, passwordEnv: PG_PASSWORD }
    wal: { enabled: true, partialIntervalSeconds: 1 }
  - name: offline
    engine: pg
    postgres: { host: 127.0.0.1, port: ${closedPort}, user: postgres, database: postgres, passwordEnv: PG_PASSWORD }
    wal: { enabled: true }
`;
    const configPath = join(dir, 'tidemark.yaml');
    await writeFile(configPath, yaml);
    const healthPort = await freePort();
    agent = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env['PATH'], TIDEMARK_CONFIG: configPath, TIDEMARK_HEALTH_PORT: String(healthPort), TIDEMARK_LOG_LEVEL: 'info', PG_PASSWORD: pg.password },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-200_000)));
    agent.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-200_000)));
    const exited = new Promise<number | null>((r) => agent?.once('exit', (code) => r(code)));

    const health = async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
        return (await res.json()) as { status: string; checks: Record<string, { ok: boolean; detail?: Record<string, unknown> }> };
      } catch {
        return undefined;
      }
    };
    const running = await waitFor('the main target archiving', async () => {
      const h = await health();
      return h?.checks['wal:main']?.detail?.['state'] === 'running' ? h : undefined;
    });
    // The unreachable target does not stop the agent: it keeps trying in the background.
    expect(running.checks['wal:offline']?.detail).toMatchObject({ state: 'starting', lastError: expect.stringMatching(/could not be reached/) });
    expect(running.checks['wal:main']?.ok).toBe(true);

    await pg.query('CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 5000) g');
    const [row] = await pg.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const segment = (row as { name: string }).name;
    const archived = await waitFor(`wal.archived for ${segment}`, () => events.find((e) => e.subject === 'wal.archived.pg.main' && e.data['file'] === segment));
    expect(archived.data).toMatchObject({ fileKind: 'segment', target: 'main', engine: 'pg', timeline: 1 });
    // Stored on the WAL stream (bootstrap creates it with the others), not merely seen on the wire.
    const stream = await (await nc.jetstreamManager()).streams.info('TIDEMARK_WAL');
    expect(stream.state.messages).toBeGreaterThan(0);
    const after = await waitFor('health after the upload', async () => {
      const h = await health();
      return (h?.checks['wal:main']?.detail?.['uploads'] as { segments: number } | undefined)?.segments ? h : undefined;
    });
    expect(after.checks['wal:main']?.detail).toMatchObject({ slot: 'tidemark_main', receiver: { running: true } });

    const spool = join(dir, 'pg', 'wal', 'main');
    expect(await processesMentioning(spool)).toHaveLength(1);
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await processesMentioning(spool)).toEqual([]);
    expect(output).toMatch(/pg_receivewal stopped[^\n]*"code":0|"code":0[^\n]*pg_receivewal stopped/);
  });
});
