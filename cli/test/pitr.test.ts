// `tidemark restore pg <target> --to … --into …`: parsing the recovery target and the destination,
// the command it becomes, and what --wait prints when the restore completes.
import { describe, expect, it } from 'vitest';
import { parseArgs, parsePointInTime } from '../src/args.js';
import { buildRestoreRequest } from '../src/commands/restore.js';
import { pgCtlStop, pointInTimeLines, restoreFollower } from '../src/commands/follow.js';

const command = (argv: string[]) => {
  const result = parseArgs(argv);
  if (!result.ok) throw new Error(`expected success, got: ${result.error}`);
  return result.command as Parameters<typeof buildRestoreRequest>[0];
};
const usageError = (argv: string[]) => {
  const result = parseArgs(argv);
  if (result.ok) throw new Error('expected a usage error');
  return result.error;
};

describe('restore pg --to', () => {
  it('reads times as the agent does (ISO 8601, RFC 3339, PostgreSQL text), UTC unless they carry an offset, to the microsecond', () => {
    expect(parsePointInTime('2026-11-22 10:15:00')).toEqual({ time: '2026-11-22T10:15:00.000000Z' });
    expect(parsePointInTime('2026-11-22T10:15')).toEqual({ time: '2026-11-22T10:15:00.000000Z' });
    expect(parsePointInTime('2026-11-22 10:15:00.5 UTC')).toEqual({ time: '2026-11-22T10:15:00.500000Z' });
    expect(parsePointInTime('2026-11-22 10:15:00+01:00')).toEqual({ time: '2026-11-22T09:15:00.000000Z' });
    expect(parsePointInTime('2026-11-22 10:15:00-0530')).toEqual({ time: '2026-11-22T15:45:00.000000Z' });
    expect(parsePointInTime('2026-11-22')).toEqual({ time: '2026-11-22T00:00:00.000000Z' });
    expect(parsePointInTime('2026-12-04 02:23:56.98+00')).toEqual({ time: '2026-12-04T02:23:56.980000Z' });
    expect(parsePointInTime('2026-12-04T02:23:56.98+00')).toEqual({ time: '2026-12-04T02:23:56.980000Z' });
    expect(parsePointInTime('2026-12-04 02:23:56.123456+00')).toEqual({ time: '2026-12-04T02:23:56.123456Z' });
    expect(parsePointInTime('20261204T022356Z')).toEqual({ time: '2026-12-04T02:23:56.000000Z' });
  });

  it('reads latest, LSNs and restore points; --exclusive applies to times and LSNs', () => {
    expect(parsePointInTime('latest')).toEqual({ latest: true });
    expect(parsePointInTime('16/b374d848')).toEqual({ lsn: '16/B374D848' });
    expect(parsePointInTime('restore-point:before_migration')).toEqual({ restorePoint: 'before_migration' });
    expect(parsePointInTime('0/3000060', true)).toEqual({ lsn: '0/3000060', inclusive: false });
  });

  it('takes --into as a directory, a port or both, and builds the command', () => {
    const toPort = buildRestoreRequest(command(['restore', 'pg', 'main', '--to', '2026-11-22 10:15:00', '--into', '5544']), 'r1', 'me');
    expect(toPort).toMatchObject({ pointInTime: { time: '2026-11-22T10:15:00.000000Z' }, intoPort: 5544, overwrite: false });
    expect(toPort).not.toHaveProperty('intoDatabase');
    const toDir = buildRestoreRequest(command(['restore', 'pg', 'main', '--to', 'latest', '--into', '/srv/pg/restored', '--overwrite', '--artifact', 'a1']), 'r2', 'me');
    expect(toDir).toMatchObject({ pointInTime: { latest: true }, intoDirectory: '/srv/pg/restored', overwrite: true, artifactId: 'a1' });
    const both = command(['restore', 'pg', 'main', '--to', 'restore-point:p1', '--into', '/srv/pg/r:6000', '--wait']);
    expect(both).toMatchObject({ intoDirectory: '/srv/pg/r', intoPort: 6000, wait: true, pointInTime: { restorePoint: 'p1' } });
    // A plain name is still a database, for logical restores.
    expect(buildRestoreRequest(command(['restore', 'pg', 'main', '--into', 'app_copy']), 'r3', 'me')).toMatchObject({ intoDatabase: 'app_copy' });
  });

  it('explains what it cannot read', () => {
    expect(usageError(['restore', 'pg', 'main', '--to', 'yesterday'])).toMatch(/--to "yesterday" is not a recovery target: use latest, an LSN/);
    expect(usageError(['restore', 'pg', 'main', '--to', '2026-13-45 10:00'])).toMatch(/--to "2026-13-45 10:00" is not a recovery target/);
    expect(usageError(['restore', 'qdrant', 'vectors', '--to', 'latest'])).toMatch(/--to and --exclusive are for pg targets/);
    expect(usageError(['restore', 'pg', 'main', '--to', 'latest', '--exclusive'])).toMatch(/--exclusive applies to a time or an LSN/);
    expect(usageError(['restore', 'pg', 'main', '--exclusive'])).toMatch(/--exclusive needs --to/);
    expect(usageError(['restore', 'pg', 'main', '--to', 'latest', '--into', '70000'])).toMatch(/70000 is not a port/);
  });
});

describe('restore --wait, point in time', () => {
  it('prints where the server runs, where it recovered to, the RTO split and the checks', () => {
    const f = restoreFollower('req-9', 's');
    const step = f.step({
      type: 'restore.completed',
      event: {
        schemaVersion: 1, engine: 'pg', target: 'main', requestId: 'req-9', occurredAt: '2026-11-22T10:20:00Z',
        artifactId: 'base-1', database: '/srv/pg/r', dataDirectory: '/srv/pg/r', port: 5544, durationMs: 5400,
        previousDatabaseKeptAs: '/srv/pg/r.pre_restore_20261122101900',
        recoveredTo: { timeline: 2, lsn: '0/40001C8', lastTransactionAt: '2026-11-22T10:14:59.120Z' },
        rto: { downloadMs: 1200, replayMs: 700, startMs: 1100, totalMs: 3000, walFilesFetched: 4 },
        checks: [{ name: 'recovery:promoted', ok: true }, { name: 'database app', ok: false, detail: 'not connectable: database "app" does not exist' }],
      },
    });
    expect(step).toMatchObject({ exitCode: 0, outcome: 'restored', artifactId: 'base-1' });
    expect(step.line?.split('\n')).toEqual([
      'restored: base-1 into /srv/pg/r in 5.4s; the previous data directory is kept as /srv/pg/r.pre_restore_20261122101900',
      "server: on the pg-agent's host, listening on 127.0.0.1:5544; data directory /srv/pg/r; it keeps running",
      expect.stringMatching(/^stop: .*pg_ctl -D \/srv\/pg\/r stop$/),
      'recovered to: LSN 0/40001C8 on new timeline 2, last transaction committed at 2026-11-22T10:14:59.120Z',
      'RTO: download 1.2s, WAL replay 700ms, start 1.1s, total 3.0s (4 WAL files fetched)',
      'checks: 1 of 2 passed; failed: database app (not connectable: database "app" does not exist)',
    ]);
  });
});

describe('how to reach and stop a restored server', () => {
  const completed = {
    schemaVersion: 1 as const, engine: 'pg' as const, target: 'main', requestId: 'req-9', occurredAt: '2026-11-22T10:20:00Z',
    artifactId: 'base-1', database: '/srv/pg/r', dataDirectory: '/srv/pg/r', port: 5544, durationMs: 5400,
    host: '10.0.0.7', socketDirectory: '/srv/pg/r.socket', osUser: 'postgres', binDirectory: '/usr/lib/postgresql/15/bin',
    connectAs: { user: 'app', database: 'app' },
  };

  it('prints the listen address, the socket directory, a connect command and a stop command that works for whoever runs it', () => {
    expect(pointInTimeLines(completed, { uid: 0, username: 'root' }).split('\n')).toEqual([
      'restored: base-1 into /srv/pg/r in 5.4s',
      "server: on the pg-agent's host, listening on 10.0.0.7:5544 and the socket in /srv/pg/r.socket; data directory /srv/pg/r; it keeps running",
      `connect: psql 'host=10.0.0.7 port=5544 user=app dbname=app'   (the source's roles and passwords)`,
      'stop: runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/pg/r stop',
    ]);
  });

  it('stops as root through runuser (pg_ctl refuses root), as the server user directly, as anyone else through sudo', () => {
    const bin = '/usr/lib/postgresql/15/bin';
    expect(pgCtlStop('/srv/pg/r', 'postgres', bin, { uid: 0, username: 'root' })).toBe(`runuser -u postgres -- ${bin}/pg_ctl -D /srv/pg/r stop`);
    expect(pgCtlStop('/srv/pg/r', 'postgres', bin, { uid: 110, username: 'postgres' })).toBe(`${bin}/pg_ctl -D /srv/pg/r stop`);
    expect(pgCtlStop('/srv/pg/r', 'postgres', bin, { uid: 1000, username: 'alice' })).toBe(`sudo -u postgres ${bin}/pg_ctl -D /srv/pg/r stop`);
    expect(pgCtlStop("/srv/it's here", 'pg', undefined, { uid: 0, username: 'root' })).toBe(`runuser -u pg -- pg_ctl -D '/srv/it'\\''s here' stop`);
  });
});
