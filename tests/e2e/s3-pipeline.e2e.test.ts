// End to end on S3 storage, every service a real process, every server real.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { headers as natsHeaders, type JetStreamManager } from 'nats';
import { COMMANDS_STREAM, encode, CONTENT_TYPE_HEADER, MSGPACK, type Manifest } from '@tidemark/contracts';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { storageConfig, loadConfig } from '@tidemark/config';
import { REPO_ROOT, Stack, cronInSeconds, seedSourceDatabase } from './stack.js';

const run = promisify(execFile);

async function artifactStore(stack: Stack): Promise<ArtifactStore> {
  const { config } = loadConfig({ ...stack.env });
  return new ArtifactStore(await createBackend(storageConfig(config, stack.env)));
}

async function sourceRowCounts(stack: Stack): Promise<Record<string, number>> {
  const rows = await stack.pg.query<{ t: string; n: string }>(
    `SELECT 'documents' AS t, count(*)::text AS n FROM documents UNION ALL SELECT 'embeddings', count(*)::text FROM embeddings`,
    [],
    'app',
  );
  return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
}

describe('logical backups end to end on S3', () => {
  let stack: Stack;
  let store: ArtifactStore;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    stack = await Stack.start({
      storage: 's3',
      encrypt: false,
      schedules: `      - id: soon\n        cron: "${cronInSeconds(20)}"\n`,
      ackWaitMs: 4000,
    });
    await seedSourceDatabase(stack.pg);
    await stack.startAll();
    store = await artifactStore(stack);
    jsm = await stack.nc.jetstreamManager();
  });

  afterAll(async () => {
    await store?.backend.close();
    await stack?.stop();
  });

  it('a schedule fires, the backup is stored in S3 and proven by a restore', async () => {
    const stored = await stack.waitFor('artifact.stored.pg.main', () => true, 60_000);
    const artifactId = stored.data.artifactId as string;
    const passed = await stack.waitFor('verify.passed.pg.main', (e) => e.data.artifactId === artifactId, 90_000);
    expect(passed.data.checks).toBeInstanceOf(Array);
    const manifest = (await store.readManifest('pg', 'main', artifactId)) as Manifest;
    expect(manifest).toBeDefined();
    const tables = (manifest.source as { tables: Array<{ name: string; rows: number }> }).tables;
    const counts = await sourceRowCounts(stack);
    expect(Object.fromEntries(tables.map((t) => [t.name, t.rows]))).toEqual(counts);
    expect(manifest.data.key.startsWith(`artifacts/pg/main/${artifactId}/`)).toBe(true);
    const verification = await store.readVerification(manifest);
    expect(verification?.status).toBe('passed');
  });

  it('a JSON command published without any Tidemark code is backed up', async () => {
    stack.nc.publish('backup.requested.pg.main', new TextEncoder().encode('{"reason":"before migration","requestId":"json-cli-1"}'));
    const completed = await stack.waitFor('backup.completed.pg.main', (e) => e.data.requestId === 'json-cli-1');
    await stack.waitFor('verify.passed.pg.main', (e) => e.data.artifactId === completed.data.artifactId, 90_000);
    const manifest = await store.readManifest('pg', 'main', completed.data.artifactId as string);
    expect(manifest?.reason).toBe('before migration');
  });

  it('a malformed command is rejected with a reason and leaves the command stream empty', async () => {
    stack.nc.publish('backup.requested.pg.main', new TextEncoder().encode('{"reason": "oops",'));
    const bad = await stack.waitFor('command.rejected', (e) => e.data.subject === 'backup.requested.pg.main');
    expect((bad.data.error as { code: string }).code).toBe('COMMAND_UNDECODABLE');
    stack.nc.publish('backup.requested.pg.main', new TextEncoder().encode('{"schemaVersion": 9}'));
    const version = await stack.waitFor('command.rejected', (e) => (e.data.error as { code: string }).code === 'COMMAND_UNKNOWN_VERSION');
    expect(version.data.subject).toBe('backup.requested.pg.main');
    stack.nc.publish('backup.requested.mysql.main', new TextEncoder().encode('{}'));
    const engine = await stack.waitFor('command.rejected', (e) => e.data.subject === 'backup.requested.mysql.main');
    expect((engine.data.error as { message: string }).message).toMatch(/unknown engine/);
    // Give the agent a moment to settle, then nothing may remain queued or be redelivered.
    await new Promise((r) => setTimeout(r, 1500));
    const info = await jsm.streams.info(COMMANDS_STREAM.name);
    expect(info.state.messages).toBe(0);
  });

  it('the CLI backup --wait exits 0 on success and non-zero on failure', async () => {
    const cli = join(REPO_ROOT, 'cli', 'dist', 'main.js');
    const env = { ...process.env, TIDEMARK_NATS_URL: stack.env.TIDEMARK_NATS_URL };
    const ok = await run(process.execPath, [cli, 'backup', 'pg', 'main', '--wait', '--timeout', '120'], { env });
    expect(ok.stdout).toMatch(/verif/i);
    const failed = await run(process.execPath, [cli, 'backup', 'pg', 'nosuch', '--wait', '--timeout', '60'], { env }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(failed).not.toBe(0);
  });

  it('an agent killed mid-backup is replaced: exactly one artifact, no orphan', async () => {
    // Enough data that the dump is still running when the agent dies.
    await stack.pg.query(`CREATE TABLE bulk AS SELECT i, repeat(md5(i::text), 20) AS payload FROM generate_series(1, 300000) i`, [], 'app');
    const first = stack.processes.find((p) => p.name === 'pg-agent');
    if (!first) throw new Error('pg-agent not running');
    const h = natsHeaders();
    h.set(CONTENT_TYPE_HEADER, MSGPACK);
    await stack.nc.jetstream().publish('backup.requested.pg.main', encode({ requestId: 'kill-test', reason: 'failover' }), { headers: h, msgID: 'kill-test' });
    await stack.waitFor('backup.started.pg.main', (e) => e.data.requestId === 'kill-test');
    await first.kill('SIGKILL');
    await stack.startService('pg-agent');
    const completed = await stack.waitFor('backup.completed.pg.main', (e) => e.data.requestId === 'kill-test', 120_000);
    const artifactId = completed.data.artifactId as string;
    await stack.waitFor('verify.passed.pg.main', (e) => e.data.artifactId === artifactId, 120_000);
    const manifests = (await store.listManifests({ engine: 'pg', target: 'main' })).filter((m) => m.requestId === 'kill-test');
    expect(manifests).toHaveLength(1);
    const objects: string[] = [];
    for await (const o of store.backend.list(`artifacts/pg/main/${artifactId}/`)) objects.push(o.key);
    expect(objects.sort()).toEqual(
      [manifests[0]!.data.key, `artifacts/pg/main/${artifactId}/manifest.json`, `artifacts/pg/main/${artifactId}/verification.json`].sort(),
    );
    // The command was started by the killed agent and taken over by its replacement.
    const starters = new Set(stack.events.filter((e) => e.subject === 'backup.started.pg.main' && e.data.requestId === 'kill-test').map((e) => e.data.agentId));
    expect(starters.size).toBe(2);
    const completions = stack.events.filter((e) => e.subject === 'backup.completed.pg.main' && e.data.requestId === 'kill-test');
    expect(completions).toHaveLength(1);
  });
});
