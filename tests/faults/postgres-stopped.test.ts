// The source PostgreSQL stopped (fast shutdown: its sessions are cut) during a backup, with every
// service a real process on real NATS, PostgreSQL (pgvector) and filesystem storage
// (tests/e2e/stack.ts). Each stop is triggered by observing the backup's bytes reaching storage,
// never by a sleep; the server starts again once the failed delivery has been reported.
// 4a. During a logical backup (pg_dump), 4b. during a base backup (pg_basebackup): the delivery
//     fails retryable (never INTERNAL) and says it will be retried, nothing of it is visible in the
//     bucket, the redelivered command stores exactly one artifact, which verifies once; no alert.
// 4d. The source stays down through every delivery: a final failure with a retryable code, one
//     critical backup_failed alert, JSON on alert.critical.backup_failed, telling a person what to
//     do; nothing visible in the bucket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS_STREAM, EVENTS_STREAM, consumers, type ArtifactKind } from '@tidemark/contracts';
import { ArtifactStore } from '@tidemark/storage';
import { eventually } from '@tidemark/testkit';
import { Stack, seedSourceDatabase, uncommittedObjects, type ObservedEvent } from '../e2e/stack.js';

const SCRATCH_DATABASES = "SELECT datname FROM pg_database WHERE starts_with(datname, 'tidemark_verify_')";
const MAX_DELIVER = 3; // the stack's TIDEMARK_MAX_DELIVER
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('the source PostgreSQL stopped during a backup (every service a process, real NATS, PostgreSQL, storage)', () => {
  let stack: Stack;
  let store: ArtifactStore;
  const restartPg = (whileDown: () => Promise<void>) => stack.pg.restart!(whileDown);
  const failuresOf = (requestId: string) => stack.storedEvents('backup.failed.pg.main', (e) => e.data.requestId === requestId);

  beforeAll(async () => {
    // The first redelivery comes 3 s after a failure: time for the stopped server to start again.
    stack = await Stack.start({ storage: 'fs', encrypt: false, services: [], baseBackups: true, backoff: { initialSeconds: 3, maxSeconds: 6 } });
    // Big enough that a dump or a base backup of it takes a while: the stop lands while it is stored.
    await seedSourceDatabase(stack.pg, 60_000);
    await stack.startServices(['storage', 'pg-agent', 'verifier', 'alerter']);
    store = new ArtifactStore(await stack.openBackend());
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  });

  /** Stops the source while `kind`'s bytes are being stored, starts it once the failed delivery is reported; the retry stores one artifact. */
  const stoppedMidBackup = async (kind: ArtifactKind) => {
    const requestId = `pg-stopped-${kind}`;
    stack.nc.publish('backup.requested.pg.main', encode({ requestId, kind }));
    await eventually(() => stack.uploadInFlight(), 120_000, `the ${kind} backup to be uploading`);
    let failure: ObservedEvent | undefined;
    const stoppedAt = Date.now();
    await restartPg(async () => {
      failure = await stack.waitFor('backup.failed.pg.main', (e) => e.data.requestId === requestId, 120_000);
      // Nothing of the failed attempt is visible while the source is down.
      expect(await uncommittedObjects(store, stack.storageRoot)).toEqual([]);
      expect((await store.listManifests({ engine: 'pg', target: 'main' })).filter((m) => m.requestId === requestId)).toEqual([]);
    });
    const backAt = Date.now();
    const downMs = backAt - stoppedAt;
    expect(failure!.data, JSON.stringify(failure!.data)).toMatchObject({ attempt: 1, final: false, error: { retryable: true } });
    const error = failure!.data.error as { code: string; message: string };
    expect(error.code).not.toBe('INTERNAL');
    expect(error.message).toContain(`attempt 1 of ${MAX_DELIVER}, it will be retried`);

    const announced = await stack.waitForStored('artifact.stored.pg.main', (e) => e.data.requestId === requestId);
    const storedAfterMs = Date.now() - backAt;
    const artifactId = announced.data.artifactId as string;
    const verdict = await stack.waitForStored('verify.*.pg.main', (e) => e.data.artifactId === artifactId);
    expect(verdict.subject, JSON.stringify(verdict.data)).toBe('verify.passed.pg.main');
    await stack.settled(COMMANDS_STREAM.name, consumers.agentBackups('pg'));
    await stack.settled(EVENTS_STREAM.name, consumers.verifierArtifacts);

    expect(await stack.storedEvents('artifact.stored.pg.main', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(await stack.storedEvents('backup.completed.pg.main', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(await stack.storedEvents('verify.*.pg.main', (e) => e.data.artifactId === artifactId)).toHaveLength(1);
    const failures = await failuresOf(requestId);
    expect(failures.every((e) => e.data.final === false)).toBe(true);
    const deliveries = (await stack.storedEvents('backup.started.pg.main', (e) => e.data.requestId === requestId)).length;
    expect(deliveries).toBe(failures.length + 1);
    const manifests = (await store.listManifests({ engine: 'pg', target: 'main' })).filter((m) => m.requestId === requestId);
    expect(manifests.map((m) => [m.id, m.kind])).toEqual([[artifactId, kind]]);
    expect((await store.readVerification(manifests[0]!))?.status).toBe('passed');
    expect(await uncommittedObjects(store, stack.storageRoot)).toEqual([]);
    expect(await stack.pg.query(SCRATCH_DATABASES)).toEqual([]);
    expect(await stack.storedEvents('alert.>', (e) => e.data.requestId === requestId)).toEqual([]);
    console.log(`postgres stopped mid-${kind} backup: first delivery failed with ${error.code}; down ${downMs} ms (stop to ready); ${deliveries} deliveries; artifact committed and announced ${storedAfterMs} ms after postgres was back; verified once`);
  };

  it('4a. stopped during a logical backup: a retryable failure, then exactly one artifact, verified', () => stoppedMidBackup('logical'), 300_000);

  it('4b. stopped during a base backup: a retryable failure, then exactly one artifact, verified', () => stoppedMidBackup('base'), 300_000);

  it('4d. down through every delivery: a final failure with a retryable code and one critical alert a person can act on', async () => {
    const requestId = 'pg-stays-down';
    const alerts: unknown[] = [];
    const alertSub = stack.nc.subscribe('alert.critical.backup_failed', {
      callback: (_error, msg) => alerts.push(JSON.parse(new TextDecoder().decode(msg.data)) as unknown),
    });
    let gaveUpMs = 0;
    await restartPg(async () => {
      const requestedAt = Date.now();
      stack.nc.publish('backup.requested.pg.main', encode({ requestId, kind: 'logical' }));
      await stack.waitFor('backup.failed.pg.main', (e) => e.data.requestId === requestId && e.data.final === true, 120_000);
      gaveUpMs = Date.now() - requestedAt;
      await eventually(() => alerts.length > 0, 60_000, 'the backup_failed alert');
      await stack.settled(COMMANDS_STREAM.name, consumers.agentBackups('pg'));
    });
    alertSub.unsubscribe();

    const failures = await failuresOf(requestId);
    expect(failures.map((e) => [e.data.attempt, e.data.final])).toEqual([[1, false], [2, false], [3, true]]);
    for (const failure of failures) {
      expect(failure.data.error).toMatchObject({ code: 'SOURCE_UNAVAILABLE', retryable: true });
    }
    const alert = alerts.find((a) => (a as { requestId?: string }).requestId === requestId) as { severity: string; kind: string; summary: string; error: { code: string } } | undefined;
    expect(alert, JSON.stringify(alerts)).toMatchObject({ severity: 'critical', kind: 'backup_failed', error: { code: 'SOURCE_UNAVAILABLE' } });
    expect(alert!.summary).toContain(`gave up after ${MAX_DELIVER} attempts`);
    expect(alert!.summary).toContain('tidemark backup pg main');
    expect(await stack.storedEvents('alert.>', (e) => e.data.requestId === requestId)).toHaveLength(1);
    expect(await stack.storedEvents('artifact.stored.pg.main', (e) => e.data.requestId === requestId)).toEqual([]);
    expect((await store.listManifests({ engine: 'pg', target: 'main' })).filter((m) => m.requestId === requestId)).toEqual([]);
    expect(await uncommittedObjects(store, stack.storageRoot)).toEqual([]);
    console.log(`postgres down through every delivery: ${failures.length} deliveries, all ${failures.map((e) => (e.data.error as { code: string }).code).join('/')}; gave up ${gaveUpMs} ms after the request; alert: "${alert!.summary}"`);
  }, 300_000);
});
