// The tidemark CLI as a child process against a real nats-server. The agent and the catalog
// are played by this test (they are not under test here): they answer with scripted events.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import {
  ArtifactStored, BackupCompleted, BackupFailed, BackupStarted, CONTENT_TYPE_HEADER, RequestBackup, RequestRestore, RestoreCompleted, RestoreStarted, STREAMS, VerifyPassed,
  decode, encodeJson, parseMessage, subjects, type Engine,
} from '@tidemark/contracts';
import { createEventPublisher, ensureStreams, type EventPublisher } from '@tidemark/runtime';
import { runNodeScript, startNats, type NatsTestServer } from '@tidemark/testkit';
import { headers } from 'nats';

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const runCli = (args: string[], env: NodeJS.ProcessEnv = {}) => runNodeScript(CLI, args, env);

const sha = 'c'.repeat(64);

/** A fake pg agent: for each backup command on a target, publishes that target's scripted events. */
function fakeAgent(nc: NatsConnection, publisher: EventPublisher, target: string, script: 'succeeds' | 'fails'): void {
  const engine: Engine = 'pg';
  nc.subscribe(subjects.backupRequested(engine, target), {
    callback: (_err, msg) => {
      void (async () => {
        const command = parseMessage(RequestBackup, decode(msg.data, msg.headers));
        const requestId = command.requestId as string;
        const scope = { schemaVersion: 1 as const, engine, target, requestId, occurredAt: new Date().toISOString() };
        const artifactId = '20250601T120000Z-0123456789';
        await publisher.publish(subjects.backupStarted(engine, target), BackupStarted, { ...scope, kind: 'logical', artifactId, agentId: 'fake-agent', attempt: 1 });
        if (script === 'fails') {
          const error = { code: 'DUMP_FAILED' as const, message: 'pg_dump exited with code 1', retryable: true };
          await publisher.publish(subjects.backupFailed(engine, target), BackupFailed, { ...scope, kind: 'logical', artifactId, error, attempt: 1, final: false });
          await publisher.publish(subjects.backupFailed(engine, target), BackupFailed, { ...scope, kind: 'logical', artifactId, error, attempt: 2, final: true });
          return;
        }
        await publisher.publish(subjects.backupCompleted(engine, target), BackupCompleted, { ...scope, kind: 'logical', artifactId, storedBytes: 4096, durationMs: 120 });
        await publisher.publish(subjects.artifactStored(engine, target), ArtifactStored, {
          ...scope, kind: 'logical', artifactId, manifestKey: `artifacts/pg/${target}/${artifactId}/manifest.json`, storedBytes: 4096, sha256: sha, verify: command.verify ?? true,
        });
        if (command.verify === false) return;
        // The verifier's event carries its own request id; the CLI follows it by artifact.
        await publisher.publish(subjects.verifyPassed(engine, target), VerifyPassed, {
          ...scope, requestId: 'verifier-run-1', artifactId, checks: [{ name: 'row counts', ok: true }, { name: 'vector probe', ok: true }], durationMs: 900,
        });
      })();
    },
  });
}

describe('tidemark CLI (real NATS)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build the CLI first (npx tsc --build cli)`);
    server = await startNats();
    nc = await connect({ servers: server.url });
    await ensureStreams(await nc.jetstreamManager(), STREAMS);
    const publisher = createEventPublisher(nc.jetstream());
    fakeAgent(nc, publisher, 'main', 'succeeds');
    fakeAgent(nc, publisher, 'broken', 'fails');
    nc.subscribe(subjects.restoreRequested('pg', 'main'), {
      callback: (_err, msg) => {
        void (async () => {
          const command = parseMessage(RequestRestore, decode(msg.data, msg.headers));
          const scope = { schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', requestId: command.requestId as string, occurredAt: new Date().toISOString() };
          const artifactId = command.artifactId ?? '20250601T120000Z-0123456789';
          if (command.pointInTime) {
            // A point-in-time restore reports its data directory, port, recovery point and RTO.
            const dataDirectory = command.intoDirectory ?? '/var/lib/tidemark/pg/restores/main-1';
            await publisher.publish(subjects.restoreStarted('pg', 'main'), RestoreStarted, { ...scope, artifactId, database: dataDirectory, agentId: 'fake-agent' });
            await publisher.publish(subjects.restoreCompleted('pg', 'main'), RestoreCompleted, {
              ...scope, artifactId, database: dataDirectory, durationMs: 4200, dataDirectory, port: command.intoPort ?? 40001,
              recoveredTo: { timeline: 2, lsn: '0/40001C8', lastTransactionAt: command.pointInTime.time ?? '2026-11-22T10:14:59.000Z' },
              rto: { downloadMs: 1500, replayMs: 800, startMs: 1200, totalMs: 3500, walFilesFetched: 3 },
              checks: [{ name: 'recovery:promoted', ok: true }],
            });
            return;
          }
          const database = command.intoDatabase ?? 'main_restore_1';
          await publisher.publish(subjects.restoreStarted('pg', 'main'), RestoreStarted, { ...scope, artifactId, database, agentId: 'fake-agent' });
          await publisher.publish(subjects.restoreCompleted('pg', 'main'), RestoreCompleted, { ...scope, artifactId, database, durationMs: 2500 });
        })();
      },
    });
    // A fake catalog: one target whose newest artifact failed verification.
    nc.subscribe(subjects.catalogList(), {
      callback: (_err, msg) => {
        const h = headers();
        h.set(CONTENT_TYPE_HEADER, 'application/json');
        const at = (hours: number) => new Date(Date.now() - hours * 3600_000).toISOString();
        msg.respond(encodeJson({
          total: 2,
          artifacts: [
            { artifactId: '20250601T120000Z-aaaaaaaaaa', engine: 'pg', target: 'main', kind: 'logical', createdAt: at(1), storedBytes: 2048, verification: 'failed', verificationError: { code: 'VERIFY_MISMATCH', message: 'rows differ' } },
            { artifactId: '20250531T120000Z-bbbbbbbbbb', engine: 'pg', target: 'main', kind: 'logical', createdAt: at(25), storedBytes: 2048, verification: 'passed', verifiedAt: at(24.9) },
          ],
        }), { headers: h });
      },
    });
    // The fake storage service's WAL archive summary: one target.
    nc.subscribe(subjects.catalogWal(), {
      callback: (_err, msg) => {
        msg.respond(encodeJson({
          archives: [{ target: 'main', systemIdentifier: '7300000000000000001', current: true, segments: 4, partials: 1, histories: 0, storedBytes: 4096, timelines: [1], newestFile: '000000010000000000000004', newestArchivedAt: new Date(Date.now() - 150_000).toISOString() }],
        }));
      },
    });
    await nc.flush();
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('backup --wait follows a backup to verification and exits 0', async () => {
    const result = await runCli(['backup', 'pg', 'main', '--wait', '--reason', 'integration test', '--timeout', '20'], { TIDEMARK_NATS_URL: server.url });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^requested: [0-9a-f-]{36} on /);
    expect(lines[0]).toContain(subjects.backupRequested('pg', 'main'));
    expect(result.stdout).toContain('started: logical backup 20250601T120000Z-0123456789 on fake-agent (attempt 1)');
    expect(result.stdout).toContain('stored: 20250601T120000Z-0123456789, 4.0 KiB');
    expect(lines.at(-1)).toBe('verified: 2 checks passed in 900ms');
  });

  it('backup --wait --json prints one document; --no-verify ends at artifact.stored', async () => {
    const result = await runCli(['--nats', server.url, '--json', 'backup', 'pg', 'main', '--wait', '--no-verify', '--timeout', '20']);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout);
    expect(doc).toMatchObject({ subject: subjects.backupRequested('pg', 'main'), outcome: 'stored', artifactId: '20250601T120000Z-0123456789' });
    expect(doc.events.map((e: { type: string }) => e.type)).toEqual(['backup.started', 'backup.completed', 'artifact.stored']);
  });

  it('backup --wait exits 1 on the final failure and prints its code and message', async () => {
    const result = await runCli(['--nats', server.url, 'backup', 'pg', 'broken', '--wait', '--timeout', '20']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('attempt 1 failed: DUMP_FAILED: pg_dump exited with code 1');
    expect(result.stdout.trim().split('\n').at(-1)).toBe('backup failed: DUMP_FAILED: pg_dump exited with code 1');
  });

  it('backup without --wait prints the request id, and the command is stored with it as msg id', async () => {
    const result = await runCli(['--nats', server.url, 'backup', 'pg', 'quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const requestId = result.stdout.trim();
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const jsm = await nc.jetstreamManager();
    const stored = await jsm.streams.getMessage('TIDEMARK_COMMANDS', { last_by_subj: subjects.backupRequested('pg', 'quiet') });
    expect(stored.header.get('Nats-Msg-Id')).toBe(requestId);
    expect(parseMessage(RequestBackup, decode(stored.data, stored.header))).toMatchObject({ requestId, requestedBy: expect.stringMatching(/^cli:/) });
  });

  it('restore --wait follows the restore and exits 0', async () => {
    const result = await runCli(['--nats', server.url, 'restore', 'pg', 'main', '--into', 'main_copy', '--wait', '--timeout', '20']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('started: restoring 20250601T120000Z-0123456789 into main_copy on fake-agent');
    expect(result.stdout.trim().split('\n').at(-1)).toBe('restored: 20250601T120000Z-0123456789 into main_copy in 2.5s');
  });

  it('restore --to … --into <port> --wait sends a point-in-time command and prints the server, recovery point and RTO', async () => {
    const result = await runCli(['--nats', server.url, 'restore', 'pg', 'main', '--to', '2026-11-22 10:15:00', '--into', '5544', '--wait', '--timeout', '20']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('started: restoring 20250601T120000Z-0123456789 into /var/lib/tidemark/pg/restores/main-1 on fake-agent');
    expect(result.stdout).toContain("server: on the pg-agent's host, listening on 127.0.0.1:5544; data directory /var/lib/tidemark/pg/restores/main-1; it keeps running");
    expect(result.stdout).toMatch(/^stop: .*pg_ctl -D \/var\/lib\/tidemark\/pg\/restores\/main-1 stop$/m);
    // The time was sent as UTC, to the microsecond: the fake agent echoes it as the last transaction.
    expect(result.stdout).toContain('recovered to: LSN 0/40001C8 on new timeline 2, last transaction committed at 2026-11-22T10:15:00.000000Z');
    expect(result.stdout.trim().split('\n').at(-2)).toBe('RTO: download 1.5s, WAL replay 800ms, start 1.2s, total 3.5s (3 WAL files fetched)');
    const jsm = await nc.jetstreamManager();
    const stored = await jsm.streams.getMessage('TIDEMARK_COMMANDS', { last_by_subj: subjects.restoreRequested('pg', 'main') });
    expect(parseMessage(RequestRestore, decode(stored.data, stored.header))).toMatchObject({ pointInTime: { time: '2026-11-22T10:15:00.000000Z' }, intoPort: 5544 });
  });

  it('backup --wait exits 2 when nothing happens before the timeout', async () => {
    const result = await runCli(['--nats', server.url, 'backup', 'pg', 'idle', '--wait', '--timeout', '1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/timed out after 1s waiting for/);
  });

  it('status reports the newest artifact per target and exits 1 when it failed verification', async () => {
    const result = await runCli(['--nats', server.url, 'status']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('pg/main');
    expect(result.stdout).toMatch(/failed \(VERIFY_MISMATCH\)\s+passed \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(1d ago\): 20250531T120000Z-bbbbbbbbbb/);
    // No pg-agent answers status.wal here: the receiver is unknown, the archive still shows.
    expect(result.stdout).toMatch(/pg\/main\s+unknown \(no pg-agent answered\)\s+000000010000000000000004 \(2m ago\)\s+unknown/);
    const json = JSON.parse((await runCli(['--nats', server.url, 'status', '--json'])).stdout);
    expect(json.targets[0]).toMatchObject({ lastVerified: '20250531T120000Z-bbbbbbbbbb', lastVerifiedAt: expect.any(String) });
    expect(json.wal).toEqual([{ target: 'main', receiver: 'unknown', lastArchivedFile: '000000010000000000000004', lastArchivedAt: expect.any(String) }]);

    // A pg-agent answering status.wal: the live receiver state and lag.
    const agent = nc.subscribe(subjects.statusWal(), {
      callback: (_err, msg) => {
        msg.respond(encodeJson({ agent: 'pg-agent-1', receivers: [{ target: 'main', state: 'running', receiverUp: true, lastArchivedFile: '000000010000000000000005.partial', lastArchivedAt: new Date().toISOString(), lagSeconds: 0.8 }] }));
      },
    });
    await nc.flush();
    try {
      const live = await runCli(['--nats', server.url, 'status']);
      expect(live.stdout).toMatch(/pg\/main\s+up\s+000000010000000000000005\.partial \(\d+s ago\)\s+0\.8s/);
    } finally {
      agent.unsubscribe();
    }
    const list = await runCli(['--nats', server.url, 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).artifacts).toHaveLength(2);
  });

  it('exits 2 on usage errors and 1 when NATS cannot be reached', async () => {
    const usage = await runCli(['backup', 'pg']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('missing arguments');
    const badDatabase = await runCli(['--nats', server.url, 'restore', 'pg', 'main', '--into', 'bad name']);
    expect(badDatabase.code).toBe(2);
    // In CLI terms: the flag the user typed, not the message field it sets.
    expect(badDatabase.stderr).toContain('tidemark: --into: a plain database name');
    expect(badDatabase.stderr).not.toContain('intoDatabase');
    const down = await runCli(['--nats', 'nats://127.0.0.1:1', 'status']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot connect to NATS at nats://127.0.0.1:1');
  });
});
