// nats-server restarted (stopped, then started on the same port with the same JetStream store: a
// restart, not a wipe) while a job runs, with every service a real process on real NATS,
// PostgreSQL (pgvector) and filesystem storage (tests/e2e/stack.ts). Each outage is triggered by
// observing the job in flight (bytes in storage, a restore session in PostgreSQL), never by a sleep,
// and lasts until the job has done its work, so that the event announcing it falls into the outage:
// the worst case for an event, which an agent must not lose.
// 3a. During a logical backup's upload: the command is not lost (one artifact.stored, one
//     backup.completed in the stream), no duplicate (one committed artifact, nothing else in the
//     bucket), verified once, no scratch database left.
// 3b. During a logical restore into a new database: one restore.completed, no restore.failed, the
//     restored database is there once with the source's rows, restored once (before the restore
//     marked its database, the redelivery failed with RESTORE_TARGET_EXISTS and paged someone).
// Both: the services reconnect by themselves (same processes, each logs its reconnect) and /readyz
// is ready again; no alert, since nothing here needs a person.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS_STREAM, EVENTS_STREAM, consumers } from '@tidemark/contracts';
import { ArtifactStore } from '@tidemark/storage';
import { eventually } from '@tidemark/testkit';
import { Stack, seedSourceDatabase, uncommittedObjects, type ServiceName, type ServiceProcess } from '../e2e/stack.js';

const SCRATCH_DATABASES = "SELECT datname FROM pg_database WHERE starts_with(datname, 'tidemark_verify_')";
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('nats-server restarted mid-job (every service a process, real NATS, PostgreSQL, storage)', () => {
  let stack: Stack;
  let store: ArtifactStore;
  let running = new Map<ServiceName, ServiceProcess>();

  const ready = async (proc: ServiceProcess) => (await fetch(`http://127.0.0.1:${proc.healthPort}/readyz`).catch(() => undefined))?.ok === true;
  /** Every service is the process started in beforeAll, reconnected by itself, and ready again. */
  const reconnectedByThemselves = async (restarts: number) => {
    for (const proc of running.values()) {
      expect(proc.child.exitCode, `${proc.name} exited:\n${proc.output().slice(-3000)}`).toBeNull();
      await eventually(() => ready(proc), 60_000, `${proc.name} to be ready again`);
      expect(proc.output().split('\n').filter((line) => line.includes('reconnected to nats')), proc.name).toHaveLength(restarts);
    }
  };

  beforeAll(async () => {
    stack = await Stack.start({ storage: 'fs', encrypt: false, services: [], backoff: { initialSeconds: 1, maxSeconds: 4 } });
    // Big enough that dumping it takes seconds: the outage starts while its bytes are uploaded.
    await seedSourceDatabase(stack.pg, 60_000);
    running = await stack.startServices(['storage', 'pg-agent', 'verifier', 'alerter']);
    store = new ArtifactStore(await stack.openBackend());
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  });

  let artifactId: string;

  it('3a. restarted while a logical backup uploads: one artifact, announced once, verified once', async () => {
    const requestId = 'nats-restart-backup';
    stack.nc.publish('backup.requested.pg.main', encode({ requestId, kind: 'logical' }));
    await eventually(() => stack.uploadInFlight(), 120_000, 'the dump to be uploading');
    const committed = async () => (await store.listManifests({ engine: 'pg', target: 'main' })).find((m) => m.requestId === requestId);
    let downMs = 0;
    await stack.nats.restart(async () => {
      const downAt = Date.now();
      // Down until the artifact is committed: its announcement must outlive the outage.
      await eventually(committed, 120_000, 'the artifact to be committed while nats is down');
      downMs = Date.now() - downAt;
    });
    const backAt = Date.now();
    const announced = await stack.waitForStored('artifact.stored.pg.main', (e) => e.data.requestId === requestId);
    const announcedAfterMs = Date.now() - backAt;
    artifactId = announced.data.artifactId as string;
    const verdict = await stack.waitForStored('verify.*.pg.main', (e) => e.data.artifactId === artifactId);
    expect(verdict.subject).toBe('verify.passed.pg.main');
    await stack.settled(COMMANDS_STREAM.name, consumers.agentBackups('pg'));
    await stack.settled(EVENTS_STREAM.name, consumers.verifierArtifacts);

    // Not lost, not duplicated: one of each event, one committed artifact and nothing else in the bucket.
    expect(await stack.storedEvents('artifact.stored.pg.main', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(await stack.storedEvents('backup.completed.pg.main', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(await stack.storedEvents('backup.failed.pg.main', (e) => e.data.requestId === requestId)).toEqual([]);
    expect(await stack.storedEvents('verify.passed.pg.main', (e) => e.data.artifactId === artifactId)).toHaveLength(1);
    expect(await stack.storedEvents('verify.failed.pg.main', (e) => e.data.artifactId === artifactId)).toEqual([]);
    const manifests = await store.listManifests({ engine: 'pg', target: 'main' });
    expect(manifests.map((m) => m.id)).toEqual([artifactId]);
    expect(await uncommittedObjects(store, stack.storageRoot)).toEqual([]);
    expect((await store.readVerification(manifests[0]!))?.status).toBe('passed');
    // Logged after the event is published, and read through a pipe: wait for it, then count.
    const passedLines = () => running.get('verifier')!.output().split('\n').filter((line) => line.includes(`"artifactId":"${artifactId}"`) && line.includes('verification passed'));
    await eventually(() => passedLines().length > 0, 10_000, 'the verifier to log the verification it published');
    expect(passedLines()).toHaveLength(1);
    expect(await stack.pg.query(SCRATCH_DATABASES)).toEqual([]);
    await reconnectedByThemselves(1);
    const backupDeliveries = running.get('pg-agent')!.output().split('\n').filter((line) => line.includes(`"requestId":"${requestId}"`) && line.includes('"msg":"backup started"')).length;
    const reannounced = running.get('pg-agent')!.output().includes('artifact already committed, announcing it again');
    console.log(`nats restart mid-backup: down ${downMs} ms (until the artifact was committed); ${backupDeliveries} dump(s), ${reannounced ? 're-announced by a redelivery' : 'announced by the first delivery'}; artifact.stored in the stream ${announcedAfterMs} ms after nats was back; verified once`);
  }, 300_000);

  it('3b. restarted while a logical restore runs: restore.completed once, the database restored once', async () => {
    const requestId = 'nats-restart-restore';
    const into = 'app_copy';
    stack.nc.publish('restore.requested.pg.main', encode({ requestId, artifactId, intoDatabase: into }));
    const restoreSessions = () => stack.pg.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [into]);
    await eventually(async () => (await restoreSessions()).length > 0, 120_000, 'pg_restore to be working in the new database');
    let downMs = 0;
    await stack.nats.restart(async () => {
      const downAt = Date.now();
      // Down until the restore is done (it marks its database last): its restore.completed falls into the outage.
      const marked = async () => (await stack.pg.query<{ comment: string | null }>("SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", [into]))[0]?.comment?.includes(requestId);
      await eventually(marked, 120_000, 'the restore to finish while nats is down');
      downMs = Date.now() - downAt;
    });
    const backAt = Date.now();
    const outcome = await stack.waitForStored('restore.*.pg.main', (e) => e.data.requestId === requestId && !e.subject.startsWith('restore.started.'));
    expect(outcome.subject, JSON.stringify(outcome.data)).toBe('restore.completed.pg.main');
    const completedAfterMs = Date.now() - backAt;
    await stack.settled(COMMANDS_STREAM.name, consumers.agentRestores('pg'));

    expect(await stack.storedEvents('restore.failed.pg.main', (e) => e.data.requestId === requestId)).toEqual([]);
    expect(await stack.storedEvents('restore.completed.pg.main', (e) => e.data.requestId === requestId)).toHaveLength(1);
    const databases = await stack.pg.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, 'app_') ORDER BY datname");
    expect(databases.map((d) => d.datname)).toEqual([into]);
    const [{ count }] = (await stack.pg.query<{ count: string }>('SELECT count(*) FROM documents', [], into)) as [{ count: string }];
    expect(Number(count)).toBe(60_000);
    await reconnectedByThemselves(2);
    const restoreRuns = (await stack.storedEvents('restore.started.pg.main', (e) => e.data.requestId === requestId)).length;
    expect(restoreRuns).toBe(1);
    const reannounced = running.get('pg-agent')!.output().includes('restore already finished by an earlier delivery');
    console.log(`nats restart mid-restore: down ${downMs} ms (until the restore was done); ${restoreRuns} restore run, ${reannounced ? 'announced by a redelivery' : 'announced by the first delivery'}; restore.completed in the stream ${completedAfterMs} ms after nats was back`);
  }, 300_000);

  it('no alert: nothing here needs a person', async () => {
    expect(await stack.storedEvents('alert.>')).toEqual([]);
  });
});
