// The tidemark CLI's files commands as a child process against a real nats-server: backup and
// restore with --wait (progress on stderr, the outcome on stdout) and ls. The files agent and the
// catalog are played by this test with scripted answers.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import {
  ArtifactStored, BackupCompleted, BackupStarted, CatalogTreeRequest, JobProgress, RequestBackup, RequestRestore, RestoreCompleted, RestoreStarted, STREAMS, VerifyPassed,
  decode, encodeJson, parseMessage, subjects,
} from '@tidemark/contracts';
import { createEventPublisher, ensureStreams } from '@tidemark/runtime';
import { runNodeScript, startNats, type NatsTestServer } from '@tidemark/testkit';

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const runCli = (args: string[]) => runNodeScript(CLI, args);

const artifactId = '20261207T120000Z-f1f2f3f4f5';

describe('tidemark CLI, files (real NATS)', () => {
  let server: NatsTestServer;
  let nc: NatsConnection;
  const received: { backups: RequestBackup[]; restores: RequestRestore[]; trees: CatalogTreeRequest[] } = { backups: [], restores: [], trees: [] };

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build the CLI first (npx tsc --build cli)`);
    server = await startNats();
    nc = await connect({ servers: server.url });
    await ensureStreams(await nc.jetstreamManager(), STREAMS);
    const publisher = createEventPublisher(nc.jetstream());
    const progress = (action: 'backup' | 'restore', requestId: string, filesDone: number, bytesDone: number, current?: string) =>
      nc.publish(subjects.progress(action, 'files', 'docs'), encodeJson(JobProgress.parse({
        schemaVersion: 1, engine: 'files', target: 'docs', requestId, artifactId, action, occurredAt: new Date().toISOString(),
        filesDone, filesTotal: 10, bytesDone, bytesTotal: 10 * 1048576, bytesPerSecond: 2 * 1048576, etaSeconds: 65, ...(current ? { current } : {}),
      })));

    nc.subscribe(subjects.backupRequested('files', 'docs'), {
      callback: (_err, msg) => {
        void (async () => {
          const command = parseMessage(RequestBackup, decode(msg.data, msg.headers));
          received.backups.push(command);
          const requestId = command.requestId as string;
          const scope = { schemaVersion: 1 as const, engine: 'files' as const, target: 'docs', requestId, occurredAt: new Date().toISOString() };
          await publisher.publish(subjects.backupStarted('files', 'docs'), BackupStarted, { ...scope, kind: 'tree', artifactId, agentId: 'fake-files-agent', attempt: 1 });
          // Another request's progress on the same target is not ours to show.
          progress('backup', 'someone-else', 9, 9 * 1048576);
          progress('backup', requestId, 3, 3 * 1048576, 'cases/2024/b.pdf');
          progress('backup', requestId, 7, 7 * 1048576);
          await nc.flush();
          await publisher.publish(subjects.backupCompleted('files', 'docs'), BackupCompleted, {
            ...scope, kind: 'tree', artifactId, storedBytes: 5 * 1048576, durationMs: 4000, problemsCount: 3,
            problems: [{ path: 'cases/locked.pdf', problem: 'unreadable', detail: 'EACCES' }, { path: 'cases/live.log', problem: 'changed_during_backup' }],
          });
          await publisher.publish(subjects.artifactStored('files', 'docs'), ArtifactStored, {
            ...scope, kind: 'tree', artifactId, manifestKey: `artifacts/files/docs/${artifactId}/manifest.json`, storedBytes: 5 * 1048576, sha256: 'd'.repeat(64), verify: true,
          });
          await publisher.publish(subjects.verifyPassed('files', 'docs'), VerifyPassed, {
            ...scope, requestId: 'verifier-run', artifactId, checks: [{ name: 'files:compare', ok: true }], durationMs: 1500,
          });
        })();
      },
    });
    nc.subscribe(subjects.restoreRequested('files', 'docs'), {
      callback: (_err, msg) => {
        void (async () => {
          const command = parseMessage(RequestRestore, decode(msg.data, msg.headers));
          received.restores.push(command);
          const requestId = command.requestId as string;
          const scope = { schemaVersion: 1 as const, engine: 'files' as const, target: 'docs', requestId, occurredAt: new Date().toISOString() };
          const into = command.intoDirectory ?? '/var/lib/tidemark/files/restores/docs-1';
          await publisher.publish(subjects.restoreStarted('files', 'docs'), RestoreStarted, { ...scope, artifactId: command.artifactId ?? artifactId, database: into, agentId: 'fake-files-agent' });
          progress('restore', requestId, 1, 1048576);
          await nc.flush();
          await publisher.publish(subjects.restoreCompleted('files', 'docs'), RestoreCompleted, {
            ...scope, artifactId: command.artifactId ?? artifactId, database: into, durationMs: 3000, files: { files: 10, directories: 3, symlinks: 1, bytes: 10 * 1048576 },
          });
        })();
      },
    });
    nc.subscribe(subjects.catalogTree(), {
      callback: (_err, msg) => {
        const request = parseMessage(CatalogTreeRequest, decode(msg.data, msg.headers));
        received.trees.push(request);
        if (request.path === 'missing') {
          msg.respond(encodeJson({ error: { code: 'STORAGE_NOT_FOUND', message: `files snapshot ${artifactId} of target "docs" holds no path "missing"`, retryable: false } }));
          return;
        }
        msg.respond(encodeJson({
          artifactId,
          truncated: true,
          entries: [
            { path: 'cases/2024', type: 'dir', size: 0, mode: 0o755, mtime: '2026-12-01T10:00:00.000Z' },
            { path: 'cases/2024/b.pdf', type: 'file', size: 1048576, mode: 0o640, mtime: '2026-12-01T10:05:09.000Z' },
            { path: 'cases/2024/run.sh', type: 'file', size: 12, mode: 0o4755, mtime: '2026-12-01T10:05:09.000Z', problem: 'changed_during_backup' },
            { path: 'cases/2024/latest', type: 'symlink', size: 0, mode: 0o777, mtime: '2026-12-01T10:06:00.000Z', linkTarget: 'b.pdf' },
            { path: 'cases/2024/copy.pdf', type: 'hardlink', size: 0, mode: 0o640, mtime: '2026-12-01T10:05:09.000Z', linkTo: 'cases/2024/b.pdf' },
          ],
        }));
      },
    });
    await nc.flush();
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it('backup files --full-rehash --wait sends fullRehash, shows its progress on stderr and the problems on stdout', async () => {
    const result = await runCli(['--nats', server.url, 'backup', 'files', 'docs', '--full-rehash', '--wait', '--timeout', '20']);
    expect(result.code).toBe(0);
    expect(received.backups.at(-1)).toMatchObject({ fullRehash: true });
    // Not a terminal: the first progress line at once, the next only 10 s later; never another request's.
    expect(result.stderr).toBe('backup: 3/10 files, 3.0 MiB of 10 MiB (30%), 2.0 MiB/s, ETA 1m05s: cases/2024/b.pdf\n');
    expect(result.stdout).toContain("snapshot: tree of 5.0 MiB written in 4.0s (new chunks in the bucket's chunk repository)\nproblems: 3 path(s) not stored as they were\n  unreadable: cases/locked.pdf (EACCES)\n  changed_during_backup: cases/live.log\n  … and 1 more");
    expect(result.stdout.trim().split('\n').at(-1)).toBe('verified: 1 checks passed in 1.5s');
  });

  it('restore files --path … --into … --wait sends the paths and directory and prints what was written', async () => {
    const result = await runCli(['--nats', server.url, 'restore', 'files', 'docs', '--path', 'cases/2024', '--path', 'notes.txt', '--into', '/srv/restore', '--overwrite', '--snapshot', artifactId, '--wait', '--timeout', '20']);
    expect(result.code).toBe(0);
    expect(received.restores.at(-1)).toMatchObject({ paths: ['cases/2024', 'notes.txt'], intoDirectory: '/srv/restore', overwrite: true, artifactId });
    expect(result.stderr).toBe('restore: 1/10 files, 1.0 MiB of 10 MiB (10%), 2.0 MiB/s, ETA 1m05s\n');
    expect(result.stdout.trim().split('\n').at(-1)).toBe(`restored: ${artifactId} into /srv/restore in 3.0s: 10 files (10 MiB), 3 directories, 1 symlinks`);
  });

  it('restore files --into-bucket/--into-prefix for an s3 target', async () => {
    const result = await runCli(['--nats', server.url, 'restore', 'files', 'docs', '--into-bucket', 'restored-docs', '--into-prefix', 'after-incident/']);
    expect(result.code).toBe(0);
    await expect.poll(() => received.restores.at(-1)?.intoBucket, { timeout: 10_000 }).toBe('restored-docs');
    expect(received.restores.at(-1)).toMatchObject({ intoPrefix: 'after-incident/' });
  });

  it('ls files lists a snapshot ls -l-like, and --json prints the reply', async () => {
    const result = await runCli(['--nats', server.url, 'ls', 'files', 'docs', artifactId, 'cases/2024', '--recursive', '--limit', '5']);
    expect(result.code).toBe(0);
    expect(received.trees.at(-1)).toEqual({ target: 'docs', artifactId, path: 'cases/2024', recursive: true, limit: 5 });
    expect(result.stdout).toBe([
      `snapshot ${artifactId}: 5 entries`,
      'drwxr-xr-x        0  2026-12-01 10:00  cases/2024/',
      '-rw-r-----  1048576  2026-12-01 10:05  cases/2024/b.pdf',
      '-rwsr-xr-x       12  2026-12-01 10:05  cases/2024/run.sh  [changed during backup]',
      'lrwxrwxrwx        0  2026-12-01 10:06  cases/2024/latest -> b.pdf',
      '-rw-r-----        0  2026-12-01 10:05  cases/2024/copy.pdf => cases/2024/b.pdf (hard link)',
      '… more entries follow: raise --limit or list a narrower path',
    ].join('\n') + '\n');
    const json = await runCli(['--nats', server.url, '--json', 'ls', 'files', 'docs']);
    expect(received.trees.at(-1)).toEqual({ target: 'docs' });
    expect(JSON.parse(json.stdout)).toMatchObject({ artifactId, truncated: true });
  });

  it('ls files names a missing path and exits 1', async () => {
    const result = await runCli(['--nats', server.url, 'ls', 'files', 'docs', 'missing']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`tidemark: files snapshot ${artifactId} of target "docs" holds no path "missing" [STORAGE_NOT_FOUND]\n`);
  });
});
