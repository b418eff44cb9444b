// Issue 3 end to end: base backups, continuous WAL archiving and point-in-time recovery, with
// every service a real process on real PostgreSQL, NATS and an S3 endpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { storageConfig, loadConfig } from '@tidemark/config';
import { createBackend, WalArchive, type StorageBackend } from '@tidemark/storage';
import { Stack, seedSourceDatabase, type ObservedEvent, type S3ServerKind } from './stack.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const lsnValue = (lsn: string): bigint => {
  const [hi, lo] = lsn.split('/') as [string, string];
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
};

interface RestoredServer {
  readonly dataDirectory: string;
  readonly port: number;
}

/**
 * The point-in-time recovery suite, run by one test file per S3 server: s3rver, and Ceph RGW (a
 * real S3 with strict multipart and versioning semantics).
 */
export function describePointInTimeRecovery(s3Server: S3ServerKind): void {
  describe(`point-in-time recovery end to end on S3 (${s3Server})`, () => {
    let stack: Stack;
    let backend: StorageBackend;
    const restored: RestoredServer[] = [];

    const currentLsn = async (): Promise<string> => (await stack.pg.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
    /** A wal.archived event received from now on whose range reaches `lsn`. */
    const archivedAtLeast = (lsn: string) => {
      const seen = stack.events.length;
      return (e: ObservedEvent) => stack.events.indexOf(e) >= seen && typeof e.data.endLsn === 'string' && lsnValue(e.data.endLsn) >= lsnValue(lsn);
    };

    async function restore(requestId: string, pointInTime: Record<string, unknown>): Promise<ObservedEvent> {
      stack.nc.publish('restore.requested.pg.main', new TextEncoder().encode(JSON.stringify({ requestId, pointInTime })));
      const done = await Promise.race([
        stack.waitFor('restore.completed.pg.main', (e) => e.data.requestId === requestId, 120_000),
        stack.waitFor('restore.failed.pg.main', (e) => e.data.requestId === requestId, 120_000),
      ]);
      if (done.subject.startsWith('restore.completed')) restored.push({ dataDirectory: done.data.dataDirectory as string, port: done.data.port as number });
      return done;
    }

    async function labelsAt(server: RestoredServer): Promise<string[]> {
      const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: stack.pg.user, password: stack.pg.password, database: 'app' });
      await client.connect();
      try {
        return (await client.query<{ label: string }>('SELECT label FROM moments ORDER BY id')).rows.map((r) => r.label);
      } finally {
        await client.end();
      }
    }

    beforeAll(async () => {
      stack = await Stack.start({ storage: 's3', s3Server, encrypt: true, ackWaitMs: 30_000, wal: { partialIntervalSeconds: 1, archiveCheckIntervalSeconds: 2 } });
      await seedSourceDatabase(stack.pg, 500);
      await stack.pg.query('CREATE TABLE moments (id serial PRIMARY KEY, label text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())', [], 'app');
      await stack.startAll();
      const { config } = loadConfig({ ...stack.env });
      backend = await createBackend(storageConfig(config, stack.env));
    }, 120_000);

    afterAll(async () => {
      for (const server of restored) {
        await run('/usr/lib/postgresql/15/bin/pg_ctl', ['-D', server.dataDirectory, '-m', 'immediate', 'stop'], { uid: (await postgresUid()).uid }).catch(() => undefined);
      }
      await backend?.close();
      await stack?.stop();
    });

    it('a base backup is stored in S3 and proven by pg_verifybackup and a started sandbox', async () => {
      stack.nc.publish('backup.requested.pg.main', new TextEncoder().encode('{"kind":"base","requestId":"base-1"}'));
      const stored = await stack.waitFor('artifact.stored.pg.main', (e) => e.data.requestId === 'base-1', 120_000);
      expect(stored.data.kind).toBe('base');
      const passed = await Promise.race([
        stack.waitFor('verify.passed.pg.main', (e) => e.data.artifactId === stored.data.artifactId, 180_000),
        stack.waitFor('verify.failed.pg.main', (e) => e.data.artifactId === stored.data.artifactId, 180_000),
      ]);
      expect(passed.subject, JSON.stringify(passed.data)).toMatch(/^verify\.passed/);
    }, 240_000);

    it('restores to a time between t2 and t3 (exactly the t1 and t2 rows) and to latest (t3 too); the archive trails by seconds', async () => {
      await stack.pg.query(`INSERT INTO moments (label) VALUES ('t1')`, [], 'app');
      await sleep(1500);
      await stack.pg.query(`INSERT INTO moments (label) VALUES ('t2')`, [], 'app');
      await sleep(1500);
      const between = (await stack.pg.query<{ now: Date }>('SELECT clock_timestamp() AS now'))[0]!.now;
      await sleep(1500);
      await stack.pg.query(`INSERT INTO moments (label) VALUES ('t3')`, [], 'app');

      // RPO: the archive reaches the primary's position within a few seconds.
      const lsn = await currentLsn();
      const sampledAt = Date.now();
      const reached = archivedAtLeast(lsn);
      await stack.waitFor('wal.archived.pg.main', reached, 30_000);
      const rpoMs = Date.now() - sampledAt;
      console.log(`archive caught up with the primary's ${lsn} in ${rpoMs} ms`);
      expect(rpoMs).toBeLessThan(15_000);

      const toTime = await restore('pitr-time', { time: between.toISOString() });
      expect(toTime.subject, JSON.stringify(toTime.data)).toMatch(/^restore\.completed/);
      expect(await labelsAt(restored.at(-1)!)).toEqual(['t1', 't2']);
      const rto = toTime.data.rto as Record<string, number>;
      expect(rto.totalMs).toBeGreaterThan(0);
      console.log(`RTO to a time: ${JSON.stringify(rto)}`);

      const latest = await restore('pitr-latest', { latest: true });
      expect(latest.subject, JSON.stringify(latest.data)).toMatch(/^restore\.completed/);
      expect(await labelsAt(restored.at(-1)!)).toEqual(['t1', 't2', 't3']);
    }, 300_000);

    it('a killed receiver and a restarted server lose no segment; deleting a segment makes the gap detector fire', async () => {
      // Only this stack's receiver (its spool is under the stack's directory): other suites stream WAL too.
      await run('pkill', ['-KILL', '-f', `pg_receivewal.*${stack.dir}/`]);
      await stack.pg.restart!();
      for (let i = 0; i < 3; i += 1) {
        await stack.pg.query(`INSERT INTO moments (label) VALUES ('after restart ${i}')`, [], 'app');
        await stack.pg.query('SELECT pg_switch_wal()');
      }
      const lsn = await currentLsn();
      await stack.waitFor('wal.archived.pg.main', archivedAtLeast(lsn), 60_000);
      // Two archive checks run in the meantime: no problem reported.
      await sleep(5000);
      expect(stack.events.filter((e) => e.subject.startsWith('wal.problem.'))).toEqual([]);

      const archive = new WalArchive(backend);
      const segments = (await archive.list('main')).filter((f) => /^[0-9A-F]{24}$/.test(f.file));
      expect(segments.length).toBeGreaterThan(3);
      const victim = segments[segments.length - 2]!;
      await archive.remove('main', victim.systemIdentifier, victim.file);
      const problem = await stack.waitFor('wal.problem.pg.main', (e) => e.data.problem === 'gap', 30_000);
      expect(problem.data.missing).toContain(victim.file);
      await stack.waitFor('alert.critical.wal_gap', () => true, 30_000);

      // Recovery through the gap would silently lose data: it fails instead, and leaves nothing behind.
      const failed = await restore('pitr-through-gap', { latest: true });
      expect(failed.subject).toBe('restore.failed.pg.main');
      expect((failed.data.error as { code: string }).code).toBe('WAL_MISSING');
    }, 240_000);
  });
}

async function postgresUid(): Promise<{ uid: number }> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  return { uid: Number(stdout.trim()) };
}
