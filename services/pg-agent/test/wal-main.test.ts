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
import { eventually, freePort, makeTempDir, removeTempDir, startNats, startPostgres, type NatsTestServer, type PostgresServer, processesMentioning } from '@tidemark/testkit';

const MAIN = resolve(import.meta.dirname, '../dist/main.js');

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
      env: { PATH: process.env['PATH'], TIDEMARK_CONFIG: configPath, TIDEMARK_HEALTH_PORT: String(healthPort), TIDEMARK_LOG_LEVEL: 'info', TIDEMARK_SOURCE_PROBE_SECONDS: '1', PG_PASSWORD: pg.password },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-200_000)));
    agent.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-200_000)));
    const exited = new Promise<number | null>((r) => agent?.once('exit', (code) => r(code)));

    type Health = { httpStatus: number; status: string; ready?: boolean; degraded?: string[]; checks: Record<string, { ok: boolean; degraded?: boolean; detail?: Record<string, unknown> }> };
    const health = async (path = 'healthz'): Promise<Health | undefined> => {
      try {
        const res = await fetch(`http://127.0.0.1:${healthPort}/${path}`);
        return { httpStatus: res.status, ...((await res.json()) as Omit<Health, 'httpStatus'>) };
      } catch {
        return undefined;
      }
    };
    const running = await eventually(async () => {
      const h = await health();
      return h?.checks['wal:main']?.detail?.['state'] === 'running' ? h : undefined;
    }, 30_000, 'the main target archiving');
    // The unreachable target does not stop the agent: it keeps trying in the background.
    expect(running.checks['wal:offline']?.detail).toMatchObject({ state: 'starting', lastError: expect.stringMatching(/could not be reached/) });
    expect(running.checks['wal:main']?.ok).toBe(true);
    // The unreachable target is a degraded part: liveness stays 200, readiness too (it is reported).
    expect(running).toMatchObject({ httpStatus: 200, status: 'degraded', checks: { 'wal:offline': { ok: false, degraded: true }, 'source:offline': { ok: false, degraded: true, detail: { reachable: false } } } });
    expect(running.checks['source:main']).toMatchObject({ ok: true, detail: { reachable: true } });
    expect(await health('readyz')).toMatchObject({ httpStatus: 200, ready: true, checks: { 'consumer:pg-agent-backups': { ok: true } } });

    await pg.query('CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 5000) g');
    const [row] = await pg.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const segment = (row as { name: string }).name;
    const archived = await eventually(() => events.find((e) => e.subject === 'wal.archived.pg.main' && e.data['file'] === segment), 30_000, `wal.archived for ${segment}`);
    expect(archived.data).toMatchObject({ fileKind: 'segment', target: 'main', engine: 'pg', timeline: 1 });
    // Stored on the WAL stream (bootstrap creates it with the others), not merely seen on the wire.
    const stream = await (await nc.jetstreamManager()).streams.info('TIDEMARK_WAL');
    expect(stream.state.messages).toBeGreaterThan(0);
    const after = await eventually(async () => {
      const h = await health();
      return (h?.checks['wal:main']?.detail?.['uploads'] as { segments: number } | undefined)?.segments ? h : undefined;
    }, 30_000, 'health after the upload');
    expect(after.checks['wal:main']?.detail).toMatchObject({ slot: 'tidemark_main', receiver: { running: true }, receiverUp: true, lastArchived: { file: expect.any(String) } });

    // A source outage: within seconds the WAL receiver is reported down and the source unreachable,
    // as degraded parts (liveness stays 200); when the server is back, both recover by themselves.
    const outageStarted = Date.now();
    let down: Health | undefined;
    await pg.restart?.(async () => {
      down = await eventually(async () => {
        const h = await health();
        return h?.checks['wal:main']?.degraded === true && h.checks['source:main']?.degraded === true ? h : undefined;
      }, 15_000, 'the wal receiver reported down');
    });
    const detectedAfterMs = Date.now() - outageStarted;
    expect(down).toMatchObject({ httpStatus: 200, status: 'degraded', checks: { 'wal:main': { ok: false, detail: { receiverUp: false, receiverDownSince: expect.any(String) } }, 'source:main': { detail: { reachable: false } } } });
    expect(detectedAfterMs).toBeLessThan(10_000);
    const recovered = await eventually(async () => {
      const h = await health();
      return h?.checks['wal:main']?.ok === true && h.checks['source:main']?.ok === true ? h : undefined;
    }, 30_000, 'the wal receiver up again');
    expect(recovered.checks['wal:main']?.detail).toMatchObject({ state: 'running', receiverUp: true });
    console.log(`[wal health] receiver reported down ${detectedAfterMs} ms after the source stopped; up again ${Date.now() - outageStarted} ms after`);

    // `status.wal` answers with the live receiver state (what `tidemark status` shows).
    const reply = decode((await nc.request('status.wal', new TextEncoder().encode('{}'), { timeout: 5000 })).data) as { receivers: Record<string, unknown>[] };
    expect(reply.receivers.map((r) => r['target'])).toEqual(['main', 'offline']);
    expect(reply.receivers[0]).toMatchObject({ target: 'main', state: 'running', receiverUp: true, lastArchivedFile: expect.any(String) });
    expect(reply.receivers[1]).toMatchObject({ target: 'offline', receiverUp: false, lastError: expect.stringMatching(/could not be reached/) });

    const spool = join(dir, 'pg', 'wal', 'main');
    expect(await processesMentioning(spool)).toHaveLength(1);
    agent.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await processesMentioning(spool)).toEqual([]);
    expect(output).toMatch(/pg_receivewal stopped[^\n]*"code":0|"code":0[^\n]*pg_receivewal stopped/);
  });
});
