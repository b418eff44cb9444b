// A service SIGKILLed in the middle of a restore, with every service a real process on real NATS,
// PostgreSQL (pgvector, WAL archiving on) and filesystem storage (tests/e2e/stack.ts). Each kill is
// triggered by observing the restore in flight, never by a sleep.
// 7. The verifier killed while it restores an artifact into scratch space: a logical dump into a
//    scratch database of the sandbox, a base backup into a scratch data directory with the server it
//    started (which outlives the verifier). Its next start removes both (services/verifier/src/
//    scratch.ts), and the redelivered artifact.stored is verified exactly once.
// 8. pg-agent killed while the server of a point-in-time restore is starting: that server runs
//    detached and outlives the agent, until its restore_command finds the agent's WAL server gone
//    and aborts recovery (exit 200: never a promotion short of the target). The redelivered command
//    stops whatever still runs in the directory it claimed (the default directory derives from the
//    command, see restore/data-directory.ts), wipes it, and completes once, at the target time.
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS_STREAM, EVENTS_STREAM, consumers } from '@tidemark/contracts';
import { osUserIds, parseLsn } from '@tidemark/pg';
import { ArtifactStore, createBackend } from '@tidemark/storage';
import { eventually, processesMentioning } from '@tidemark/testkit';
import { loadConfig } from '@tidemark/config';
import { claimScratchDirectory, releaseScratchDirectory, scratchDatabaseClaims } from '@tidemark/verifier-service';
import { Stack, seedSourceDatabase, type ObservedEvent, type ServiceName, type ServiceProcess } from '../e2e/stack.js';

const run = promisify(execFile);
const SCRATCH_DATABASES = "SELECT datname FROM pg_database WHERE starts_with(datname, 'tidemark_verify_')";
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
/** Postmasters whose data directory is under `root` (pg_verifybackup and restore_command mention it too). */
const serversUnder = async (root: string): Promise<number[]> => {
  const pids = await processesMentioning(`${root}/`);
  const comms = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')));
  return pids.filter((_pid, i) => comms[i]!.trim() === 'postgres');
};

describe('a service killed mid-restore (every service a process, real NATS, PostgreSQL, storage)', () => {
  let stack: Stack;
  let store: ArtifactStore;
  const running = new Map<ServiceName, ServiceProcess>();
  let verifyDir: string;
  let restoresDir: string;

  const start = async (name: ServiceName) => running.set(name, await stack.startService(name));
  /** SIGKILL, as the OOM killer or a lost host would: no shutdown hook runs. */
  const kill = async (name: ServiceName) => expect(await running.get(name)!.kill('SIGKILL')).toBeNull();
  const eventsOf = (prefix: string, match: (e: ObservedEvent) => boolean) => stack.events.filter((e) => e.subject.startsWith(prefix) && match(e));
  const backup = async (requestId: string, kind: 'logical' | 'base') => {
    stack.nc.publish('backup.requested.pg.main', encode({ requestId, kind }));
    return (await stack.waitFor('artifact.stored.pg.main', (e) => e.data.requestId === requestId, 120_000)).data.artifactId as string;
  };
  /** The redelivered artifact.stored is verified once: one verify event, the bucket's record passed, nothing left behind. */
  const verifiedOnce = async (artifactId: string) => {
    const verdict = await stack.waitFor('verify.', (e) => e.data.artifactId === artifactId, 120_000);
    expect(verdict.subject, JSON.stringify(verdict.data)).toBe('verify.passed.pg.main');
    await stack.settled(EVENTS_STREAM.name, consumers.verifierArtifacts);
    expect(eventsOf('verify.', (e) => e.data.artifactId === artifactId)).toHaveLength(1);
    // By a later delivery than the killed one (which one depends on load: the restarted verifier
    // may see the message again only after its ack wait), and passed once.
    // Every verifier this suite started, the killed ones included: exactly one verification passed.
    // The line is logged after the event is published, and reaches this process through a pipe: wait for it.
    const linesAbout = () => stack.processes.filter((p) => p.name === 'verifier').flatMap((p) => p.output().split('\n')).filter((line) => line.includes(`"artifactId":"${artifactId}"`));
    await eventually(() => linesAbout().some((line) => line.includes('verification passed')), 10_000, 'the verifier to log the verification it published').catch(() => undefined);
    const aboutArtifact = linesAbout();
    const passedLines = aboutArtifact.filter((line) => line.includes('verification passed'));
    expect(passedLines, `the verifiers' log lines about ${artifactId}:\n${aboutArtifact.join('\n')}`).toHaveLength(1);
    expect(Number(/"attempt":(\d+)/.exec(passedLines[0]!)?.[1])).toBeGreaterThan(1);
    const manifest = await store.readManifest('pg', 'main', artifactId);
    expect((await store.readVerification(manifest!))?.status).toBe('passed');
    expect(await stack.pg.query(SCRATCH_DATABASES)).toEqual([]);
    expect(await readdir(verifyDir).catch(() => [])).toEqual([]);
    expect(await serversUnder(verifyDir)).toEqual([]);
  };

  beforeAll(async () => {
    stack = await Stack.start({ storage: 'fs', encrypt: false, services: [], wal: { partialIntervalSeconds: 1, archiveCheckIntervalSeconds: 2 } });
    // Big enough that restoring it (rows, then the HNSW index) takes seconds: the kill lands inside it.
    await seedSourceDatabase(stack.pg, 60_000);
    await stack.pg.query('CREATE TABLE moments (id serial PRIMARY KEY, label text NOT NULL)', [], 'app');
    verifyDir = join(stack.dir, 'pg', 'verify');
    restoresDir = join(stack.dir, 'pg', 'restores');
    for (const name of ['storage', 'pg-agent', 'verifier', 'alerter'] as const) await start(name);
    store = new ArtifactStore(await createBackend({ type: 'fs', root: stack.storageRoot }));
  }, 180_000);

  afterAll(async () => {
    // The restored server is the operator's and outlives the agent: stop it here.
    const postgresUser = await osUserIds('postgres');
    const restored = await readdir(restoresDir).catch(() => []);
    for (const dir of restored.filter((name) => !name.includes('.'))) {
      await run('/usr/lib/postgresql/15/bin/pg_ctl', ['-D', join(restoresDir, dir), '-m', 'immediate', 'stop'], postgresUser ?? {}).catch(() => undefined);
    }
    await store?.backend.close();
    await stack?.stop();
  });

  it('7a. the verifier killed while it restores a dump: its next start drops the scratch database, the artifact is verified once', async () => {
    const artifactId = await backup('killed-verifier-logical', 'logical');
    // The restore is in flight: the scratch database exists and a session (pg_restore) works in it.
    const inFlight = await eventually(async () => {
      const [session] = await stack.pg.query<{ datname: string; query: string }>("SELECT datname, query FROM pg_stat_activity WHERE starts_with(datname, 'tidemark_verify_')");
      return session;
    }, 120_000, 'the verifier to be restoring into its scratch database');
    await kill('verifier');
    const killedAt = Date.now();
    expect(eventsOf('verify.', (e) => e.data.artifactId === artifactId)).toEqual([]);
    expect((await stack.pg.query<{ datname: string }>(SCRATCH_DATABASES)).map((r) => r.datname)).toContain(inFlight.datname);
    // Another verifier's scratch database, claimed by a live session: not a leftover.
    const claims = scratchDatabaseClaims(loadConfig({ ...stack.env }).config.sandbox!.postgres!, stack.env);
    const liveScratch = 'tidemark_verify_live_other';
    const release = await claims.claim(liveScratch);
    await stack.pg.createDatabase(liveScratch);

    await start('verifier');
    const sweptAfterMs = Date.now() - killedAt;
    // Removed on start, before the redelivery (after the ack wait) could begin a new verification.
    expect((await stack.pg.query<{ datname: string }>(SCRATCH_DATABASES)).map((r) => r.datname).sort()).toEqual([liveScratch]);
    expect(running.get('verifier')!.output()).toMatch(new RegExp(`"databases":\\["${inFlight.datname}"\\].*removed the scratch databases of a verifier that died mid-verification`));
    await stack.pg.query(`DROP DATABASE ${liveScratch}`);
    await release();
    await verifiedOnce(artifactId);
    console.log(`killed verifier (logical, during "${inFlight.query.slice(0, 40)}"): scratch database removed ${sweptAfterMs} ms after the kill, verified once ${Date.now() - killedAt} ms after it`);
  }, 240_000);

  it('7b. the verifier killed while it checks a started base backup: its next start stops that server and removes the directory', async () => {
    const artifactId = await backup('killed-verifier-base', 'base');
    const [serverPid] = await eventually(async () => {
      const pids = await serversUnder(verifyDir);
      return pids.length > 0 && pids;
    }, 120_000, 'the verifier to start the base backup in its scratch directory');
    await kill('verifier');
    const killedAt = Date.now();
    expect(eventsOf('verify.', (e) => e.data.artifactId === artifactId)).toEqual([]);
    // The scratch server was the verifier's child, not its session: it outlives it.
    expect(await serversUnder(verifyDir)).toContain(serverPid);
    // Another verifier's scratch directory, its owner (this test's process) alive: not a leftover.
    const liveScratch = join(verifyDir, 'live-other');
    await claimScratchDirectory(liveScratch);
    await mkdir(liveScratch);

    await start('verifier');
    expect(await serversUnder(verifyDir)).toEqual([]);
    expect((await readdir(verifyDir)).sort()).toEqual(['live-other', 'live-other.owner']);
    await rm(liveScratch, { recursive: true });
    await releaseScratchDirectory(liveScratch);
    await verifiedOnce(artifactId);
    console.log(`killed verifier (base backup, server pid ${serverPid}): verified once ${Date.now() - killedAt} ms after the kill`);
  }, 240_000);

  it('8. pg-agent killed while the restored server starts: nothing of that attempt stays, the retry completes once at the target time', async () => {
    await stack.pg.query(`INSERT INTO moments (label) VALUES ('before')`, [], 'app');
    await new Promise((resolve) => setTimeout(resolve, 1000)); // commit timestamps on either side of the target
    const [{ now: target }] = (await stack.pg.query<{ now: Date }>('SELECT clock_timestamp() AS now')) as [{ now: Date }];
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await stack.pg.query(`INSERT INTO moments (label) VALUES ('after')`, [], 'app');
    const [{ lsn }] = (await stack.pg.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [{ lsn: string }];
    await stack.waitFor('wal.archived.pg.main', (e) => typeof e.data.endLsn === 'string' && parseLsn(e.data.endLsn) >= parseLsn(lsn), 60_000);

    const requestId = 'killed-agent-pitr';
    stack.nc.publish('restore.requested.pg.main', encode({ requestId, pointInTime: { time: target.toISOString() } }));
    const killedServer = await eventually(async () => {
      const pids = await serversUnder(restoresDir);
      return pids.length > 0 && pids;
    }, 120_000, 'the restored server to start');
    await kill('pg-agent');
    const killedAt = Date.now();
    const orphanAlive = (await serversUnder(restoresDir)).some((pid) => killedServer.includes(pid));

    await start('pg-agent');
    const completed = await stack.waitFor('restore.completed.pg.main', (e) => e.data.requestId === requestId, 180_000);
    const recoveredMs = Date.now() - killedAt;
    await stack.settled(COMMANDS_STREAM.name, consumers.agentRestores('pg'));
    expect(eventsOf('restore.completed.', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(eventsOf('restore.failed.', (e) => e.data.requestId === requestId)).toEqual([]);
    // Two deliveries, each started by another agent process: the killed one and the one that completed.
    const starts = eventsOf('restore.started.', (e) => e.data.requestId === requestId);
    expect(new Set(starts.map((e) => e.data.agentId)).size).toBe(2);

    // Only the completed restore's server runs in its directory: nothing of the killed attempt.
    const dataDirectory = completed.data.dataDirectory as string;
    const serving = await serversUnder(restoresDir);
    expect(serving.filter((pid) => killedServer.includes(pid))).toEqual([]);
    expect(serving).toHaveLength(1);
    expect((await readdir(restoresDir)).filter((name) => !name.endsWith('.socket'))).toEqual([dataDirectory.slice(restoresDir.length + 1)]);
    const client = new pg.Client({ host: '127.0.0.1', port: completed.data.port as number, user: stack.pg.user, password: stack.pg.password, database: 'app' });
    await client.connect();
    try {
      expect((await client.query<{ label: string }>('SELECT label FROM moments ORDER BY id')).rows.map((r) => r.label)).toEqual(['before']);
    } finally {
      await client.end();
    }
    const retryLog = running.get('pg-agent')!.output();
    expect(retryLog).toMatch(/removing the leftover of an interrupted attempt of this restore/);
    // Without the WAL server of the dead agent, its server's restore_command fails and recovery aborts: it may be gone already.
    const stoppedByRetry = retryLog.includes('stopping the server left running by an earlier attempt');
    console.log(`killed pg-agent mid point-in-time restore: the killed attempt's server ${orphanAlive ? 'outlived the agent' : 'died with it'} and ${stoppedByRetry ? 'was stopped by the retry' : 'had exited by itself before the retry'}; completed once ${recoveredMs} ms after the kill (rto ${JSON.stringify(completed.data.rto)})`);
  }, 300_000);

  it('no alert: nothing here needs a person', () => {
    expect(eventsOf('alert.', () => true)).toEqual([]);
  });
});
