// WAL archiving through faults, with pg-agent (its pg_receivewal as the postgres OS user), the
// storage service (the archive's gap check) and the alerter as real processes on real NATS,
// PostgreSQL 15 and filesystem storage (tests/e2e/stack.ts). The spool, <pg.workDir>/wal/main, is
// a small tmpfs of its own, so the test can fill it. A writer inserts rows throughout.
// 4c. PostgreSQL stopped for a few seconds while WAL is archived and written: pg-agent restarts its
//     receiver, archiving catches up, and the chain has no gap.
// 5.  The spool's filesystem full: pg_receivewal cannot pre-allocate the next segment and stops;
//     nothing truncated is uploaded, alert.critical.wal_spool_full tells a person what to do, and
//     archiving resumes by itself once the space is back.
//     The spool is kept with 4 MiB free, so pg_receivewal leaves a half pre-allocated partial that
//     it refuses on every later start; pg-agent removes it (it holds only zeros) before each start.
// After each: every closed segment of the chain is committed once (its manifest and exactly one
// data object), byte-identical to the server's pg_wal copy (kept there by wal_keep_size); the
// open segment's partial upload is a whole padded segment holding the server's WAL up to its end;
// no partial is left beside its committed segment, no wal.archived event is stored twice, and the
// only alerts are the ones a person must act on. Every wait observes the system; the only timed
// one is the outage itself.
import { execFile } from 'node:child_process';
import { closeSync, openSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { chown, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from 'nats';
import { WAL_STREAM, consumers, type WalFileManifest } from '@tidemark/contracts';
import { findGaps, formatLsn, isSegmentName, osUserIds, parseLsn, WAL_SEGMENT_SIZE } from '@tidemark/pg';
import { decodeCommitted, keyRingOf } from '@tidemark/pipeline';
import { createBackend, readAll, walFileKeys, WalArchive, type StorageBackend } from '@tidemark/storage';
import { eventually, storedMessages } from '@tidemark/testkit';
import { Stack, type ServiceName, type ServiceProcess } from '../e2e/stack.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** Nine segments: room for the open one and a backlog, little enough to fill in a moment. */
const SPOOL_BYTES = 144 * MiB;
/** How long PostgreSQL stays down in 4c once pg-agent has seen it go. */
const OUTAGE_MS = 3000;
/** What the full spool keeps free: less than the 16 MiB segment pg_receivewal pre-allocates. */
const SPOOL_LEFT_FREE = 4 * MiB;
const NO_KEYS = keyRingOf(undefined);

interface ReceiverHealth {
  readonly receiverUp: boolean;
  readonly receiver?: { readonly running: boolean; readonly restarts: number };
}

/**
 * Fills the filesystem of `path` until only `leaveFree` bytes are free, and keeps it so, taking
 * back what uploads free (the receiver deletes archived files), until released. A disk rarely
 * fills to the last byte: with a few MiB free, pg_receivewal pre-allocates part of the next
 * segment and fails, leaving a half-padded partial it refuses on its next start.
 */
class DiskFiller {
  private readonly fd: number;
  private readonly block = Buffer.alloc(MiB, 0xa5);
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly path: string, private readonly leaveFree: number) {
    this.fd = openSync(path, 'w');
  }

  private fill(): void {
    const { bavail, bsize } = statfsSync(this.path);
    let excess = bavail * bsize - this.leaveFree;
    try {
      while (excess > 0) excess -= writeSync(this.fd, this.block, 0, Math.min(excess, MiB));
    } catch (error) {
      // Someone else took the space meanwhile: the filesystem is as full as it gets.
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
  }

  keepFull(): void {
    this.fill();
    this.timer = setInterval(() => this.fill(), 50);
  }

  release(): void {
    clearInterval(this.timer);
    closeSync(this.fd);
    unlinkSync(this.path);
  }
}

describe('WAL archiving through a stopped PostgreSQL and a full spool (pg-agent, storage, alerter as processes)', () => {
  let stack: Stack;
  let agent: ServiceProcess;
  let backend: StorageBackend;
  let archive: WalArchive;
  let systemIdentifier: string;
  let spool: string;
  let spoolMounted = false;
  let alertWatch: Subscription;
  /** Alerts as they go over the wire: raw text, which must be readable JSON. */
  const alerts: { subject: string; text: string }[] = [];
  /** Closed segments already compared with the server's copy. */
  const verified = new Set<string>();
  let firstSegment: string | undefined;

  const running = new Map<ServiceName, ServiceProcess>();
  // Info, not the stack's debug: an upload every second would push the receiver's story out of the kept output.
  const start = async (name: ServiceName) => running.set(name, await stack.startService(name, { TIDEMARK_LOG_LEVEL: 'info' }));

  const receiverHealth = async (): Promise<ReceiverHealth> => {
    const response = await fetch(`http://127.0.0.1:${agent.healthPort}/healthz`);
    const body = (await response.json()) as { checks: Record<string, { detail?: ReceiverHealth }> };
    return body.checks['wal:main']?.detail as ReceiverHealth;
  };
  const restarts = async () => (await receiverHealth()).receiver?.restarts ?? 0;

  /**
   * Where the next record goes, past everything inserted. Not pg_current_wal_lsn(): with
   * synchronous_commit off that write position can sit exactly at a segment's end, which the closed
   * segment already reaches before the next segment's partial is uploaded.
   */
  const currentLsn = async (): Promise<bigint> => {
    const [row] = await stack.pg.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    return parseLsn(row!.lsn);
  };
  /** Waits until an upload (segment or partial) reaches `lsn`: everything written before it is archived. */
  const archivedPast = (lsn: bigint, timeoutMs: number) =>
    stack.waitFor('wal.archived.pg.main', (e) => typeof e.data.endLsn === 'string' && parseLsn(e.data.endLsn) >= lsn, timeoutMs);

  /** Inserts about 1 MiB of WAL every 100 ms (a segment every few seconds); a statement that fails (the server is down) is counted, and the writer goes on. */
  const startWriter = () => {
    let writing = true;
    let inserts = 0;
    let failures = 0;
    const done = (async () => {
      while (writing) {
        try {
          await stack.pg.query('INSERT INTO ticks (body) SELECT md5(g::text) FROM generate_series(1, 5000) g', [], 'app');
          inserts += 1;
        } catch {
          failures += 1;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    return {
      /** Waits for at least `count` more inserts to have committed (a writer that keeps failing times out). */
      committed: async (count: number) => {
        const from = inserts;
        await eventually(() => inserts >= from + count, 60_000, `${count} inserts by the writer`);
      },
      stop: async () => {
        writing = false;
        await done;
        return { inserts, failures };
      },
    };
  };

  /**
   * Every partial upload in the archive is a whole padded segment whose WAL, up to the end its
   * manifest claims, is the server's: what restore_command would be given is never truncated.
   */
  const checkPartials = async (): Promise<number> => {
    let checked = 0;
    for (const { file } of await archive.list('main', systemIdentifier)) {
      if (!file.endsWith('.partial')) continue;
      // A partial that grew is uploaded again (and its old data removed) as we read: read it afresh then.
      const found = await eventually(async () => {
        const manifest = await archive.readManifest('main', systemIdentifier, file);
        if (manifest === undefined) return 'superseded by its closed segment' as const;
        const decoded = await readAll(decodeCommitted(await archive.openData(manifest), manifest, NO_KEYS)).catch(() => undefined);
        return decoded && { manifest, decoded };
      }, 10_000, `a readable upload of ${file}`);
      if (typeof found === 'string') continue;
      const { manifest, decoded } = found;
      expect(decoded.length, file).toBe(WAL_SEGMENT_SIZE);
      const flushed = Number(parseLsn(manifest.endLsn!) - parseLsn(manifest.startLsn!));
      expect(flushed, file).toBeGreaterThan(0);
      const server = await readFile(join(stack.pg.dataDir, 'pg_wal', file.replace('.partial', '')));
      expect(decoded.subarray(0, flushed).equals(server.subarray(0, flushed)), `${file} up to ${manifest.endLsn}`).toBe(true);
      checked += 1;
    }
    return checked;
  };

  /**
   * Checks the partial uploads, closes the open segment and waits for it in the archive, then the
   * whole chain: no gap from the first segment on, each segment committed with exactly one data
   * object, no partial left beside its segment, every new segment byte-identical to the server's,
   * no event stored twice.
   */
  const checkChain = async (): Promise<{ segments: number; newlyVerified: number; partials: number }> => {
    // The writer has stopped: the open segment's partial upload reaches the end of the WAL, and is
    // checked before the switch supersedes it.
    const end = await currentLsn();
    await archivedPast(end, 60_000);
    const partials = await checkPartials();
    const recent = () => stack.events.filter((e) => e.subject === 'wal.archived.pg.main').slice(-6).map((e) => `${String(e.data.file)}→${String(e.data.endLsn)}`).join(' ');
    expect(partials, `end ${formatLsn(end)}; archive ${(await archive.list('main', systemIdentifier)).map((f) => f.file).join(' ')}; events ${recent()}`).toBeGreaterThan(0);
    const [row] = await stack.pg.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    const last = row!.name;
    await eventually(() => archive.readManifest('main', systemIdentifier, last), 60_000, `segment ${last} in the archive`);

    const names = (await archive.list('main', systemIdentifier)).map((f) => f.file);
    const segments = names.filter(isSegmentName);
    expect(new Set(names).size).toBe(names.length);
    firstSegment ??= segments[0];
    expect(segments[0]).toBe(firstSegment);
    expect(segments.at(-1)).toBe(last);
    expect(findGaps(segments)).toEqual([]);
    for (const name of names.filter((n) => n.endsWith('.partial'))) expect(segments).not.toContain(name.replace('.partial', ''));

    let newlyVerified = 0;
    for (const name of segments) {
      const manifest = (await archive.readManifest('main', systemIdentifier, name)) as WalFileManifest;
      const objects: string[] = [];
      for await (const object of backend.list(walFileKeys('main', systemIdentifier, name).prefix)) objects.push(object.key);
      expect(objects.sort(), name).toEqual([manifest.data.key, walFileKeys('main', systemIdentifier, name).manifest].sort());
      if (verified.has(name)) continue;
      const archived = await readAll(decodeCommitted(await archive.openData(manifest), manifest, NO_KEYS));
      const server = await readFile(join(stack.pg.dataDir, 'pg_wal', name)).catch(() => undefined);
      expect(server, `the server's copy of ${name} (wal_keep_size keeps it)`).toBeDefined();
      expect(archived.length, name).toBe(WAL_SEGMENT_SIZE);
      expect(archived.equals(server!), `${name} byte-identical to the server's`).toBe(true);
      verified.add(name);
      newlyVerified += 1;
    }

    const events = await storedMessages(await stack.nc.jetstreamManager(), WAL_STREAM.name, 'wal.archived.pg.main');
    const ids = events.map((e) => e.msgId);
    expect(new Set(ids).size).toBe(ids.length);
    return { segments: segments.length, newlyVerified, partials };
  };

  /** Once the alerter has nothing pending, every alert the problems so far cause has been published. */
  const alerterSettled = async () => {
    const jsm = await stack.nc.jetstreamManager();
    await eventually(async () => {
      const info = await jsm.consumers.info(WAL_STREAM.name, consumers.alerterWalProblem);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, 60_000, 'the alerter to have handled every wal problem');
  };
  const walProblems = async () => (await storedMessages(await stack.nc.jetstreamManager(), WAL_STREAM.name, 'wal.problem.pg.main')).map((m) => m.body as Record<string, unknown>);

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this suite mounts a tmpfs for the WAL spool: run it as root (as CI does)');
    stack = await Stack.start({ storage: 'fs', encrypt: false, services: [], wal: { partialIntervalSeconds: 1, archiveCheckIntervalSeconds: 2 } });
    // Every closed segment stays in pg_wal, so the archived copies can be compared with the server's.
    await stack.pg.query("ALTER SYSTEM SET wal_keep_size = '4GB'");
    await stack.pg.query('SELECT pg_reload_conf()');
    await stack.pg.createDatabase('app');
    await stack.pg.query('CREATE TABLE ticks (id bigserial PRIMARY KEY, body text NOT NULL)', [], 'app');
    const [row] = await stack.pg.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    systemIdentifier = row!.id;

    // The spool as pg-agent will find it: its own small filesystem, owned by the postgres OS user.
    spool = join(stack.dir, 'pg', 'wal', 'main');
    await mkdir(spool, { recursive: true, mode: 0o711 });
    await run('mount', ['-t', 'tmpfs', '-o', `size=${SPOOL_BYTES},mode=0700`, 'tmpfs', spool]);
    spoolMounted = true;
    const postgresUser = (await osUserIds('postgres'))!;
    await chown(spool, postgresUser.uid, postgresUser.gid);

    alertWatch = stack.nc.subscribe('alert.>');
    void (async () => {
      // Ends when the subscription is closed in afterAll.
      for await (const msg of alertWatch) alerts.push({ subject: msg.subject, text: new TextDecoder().decode(msg.data) });
    })();
    for (const name of ['storage', 'pg-agent', 'alerter'] as const) await start(name);
    agent = running.get('pg-agent')!;
    backend = await createBackend({ type: 'fs', root: stack.storageRoot });
    archive = new WalArchive(backend);
    await eventually(async () => (await receiverHealth())?.receiverUp === true, 60_000, 'pg-agent to stream WAL');
  }, 180_000);

  afterAll(async () => {
    if (process.env['TM_WAL_TEST_DEBUG']) console.log(agent?.output().split('\n').filter((line) => /receivewal|spool|wal archiving|partial segment/.test(line)).join('\n'));
    alertWatch?.unsubscribe();
    await backend?.close();
    // pg-agent stops its pg_receivewal first, so nothing holds the spool when it is unmounted.
    await Promise.all([...running.values()].map((service) => service.kill('SIGTERM')));
    if (spoolMounted) await run('umount', [spool]).catch(() => run('umount', ['-l', spool]));
    await stack?.stop();
  }, 60_000);

  it('4c. PostgreSQL stopped for a few seconds while WAL is written and archived: the receiver is restarted, archiving catches up, the chain has no gap', async () => {
    const writer = startWriter();
    try {
      await writer.committed(5);
      await archivedPast(await currentLsn(), 60_000);
      const restartsBefore = await restarts();

      let sawDownAfterMs = 0;
      let startedAt = 0;
      await stack.pg.restart!(async () => {
        const stoppedAt = Date.now();
        await eventually(async () => (await receiverHealth()).receiverUp === false, 30_000, 'pg-agent to see its receiver down');
        sawDownAfterMs = Date.now() - stoppedAt;
        // The outage itself: writes keep failing meanwhile.
        await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
        startedAt = Date.now();
      });
      await writer.committed(5);
      const target = await currentLsn();
      await archivedPast(target, 90_000);
      const caughtUpMs = Date.now() - startedAt;
      const restartCount = (await restarts()) - restartsBefore;
      const { inserts, failures } = await writer.stop();

      const chain = await checkChain();
      expect(restartCount).toBeGreaterThanOrEqual(1);
      expect(failures).toBeGreaterThan(0); // the writes did meet the outage
      await alerterSettled();
      // A short outage needs nobody: the wal_lagging alert waits for maxLagSeconds (300 s).
      expect(await walProblems()).toEqual([]);
      expect(alerts).toEqual([]);
      console.log(
        `[fault 4c] postgres down ${OUTAGE_MS} ms (+${sawDownAfterMs} ms until pg-agent saw its receiver down): ${restartCount} receiver restarts, ` +
          `archive caught up ${caughtUpMs} ms after the server started; ${inserts} inserts, ${failures} failed during the outage; ` +
          `chain of ${chain.segments} segments contiguous, ${chain.newlyVerified} byte-identical to pg_wal, ${chain.partials} partial upload(s) whole and matching; no wal problem, no alert`,
      );
    } finally {
      await writer.stop();
    }
  }, 180_000);

  it('5. the spool\'s filesystem full: archiving stops cleanly, nothing truncated is uploaded, wal_spool_full tells a person what to do, archiving resumes when space returns', async () => {
    const writer = startWriter();
    let filler: DiskFiller | undefined;
    try {
      await writer.committed(5);
      await archivedPast(await currentLsn(), 60_000);
      const restartsBefore = await restarts();

      filler = new DiskFiller(join(spool, 'filler'), SPOOL_LEFT_FREE);
      filler.keepFull();
      const filledAt = Date.now();
      // The next segment needs 16 MiB pre-allocated in the spool: switch now rather than wait for the writer to fill this one.
      await stack.pg.query('SELECT pg_switch_wal()');
      const alert = await stack.waitFor('alert.critical.wal_spool_full', () => true, 90_000);
      const alertAfterMs = Date.now() - filledAt;
      expect((await receiverHealth()).receiverUp).toBe(false);
      const partialsWhileFull = await checkPartials();

      // Readable on the wire as JSON, with a sentence saying what to do.
      const wire = alerts.find((a) => a.subject === 'alert.critical.wal_spool_full')!;
      const parsed = JSON.parse(wire.text) as Record<string, unknown>;
      expect(parsed).toMatchObject({ severity: 'critical', kind: 'wal_spool_full', engine: 'pg', target: 'main', details: { problem: 'spool_full' } });
      expect(parsed.summary).toContain(`Free space on ${spool}`);
      expect(parsed.summary).toContain('archiving resumes by itself');
      expect(alert.data).toEqual(parsed);

      // While the spool is full, the writes go on and the archive stands still; the slot keeps their WAL on the server.
      const archivedEnd = () => stack.events.filter((e) => e.subject === 'wal.archived.pg.main').reduce((end, e) => (typeof e.data.endLsn === 'string' && parseLsn(e.data.endLsn) > end ? parseLsn(e.data.endLsn) : end), 0n);
      const endWhileFull = archivedEnd();
      await writer.committed(5);
      expect(archivedEnd()).toBe(endWhileFull);
      expect(await currentLsn()).toBeGreaterThan(endWhileFull);
      filler.release();
      filler = undefined;
      const freedAt = Date.now();
      await writer.committed(5);
      const target = await currentLsn();
      await archivedPast(target, 120_000);
      const caughtUpMs = Date.now() - freedAt;
      const restartCount = (await restarts()) - restartsBefore;
      const { inserts } = await writer.stop();

      const chain = await checkChain();
      expect(restartCount).toBeGreaterThanOrEqual(1);
      await alerterSettled();
      expect((await walProblems()).map((p) => p.problem)).toEqual(['spool_full']);
      expect(alerts.map((a) => a.subject)).toEqual(['alert.critical.wal_spool_full']);
      // What kept streaming from ever resuming before wal-receiver.ts removed it (see its removeUnpaddedPartials).
      expect(agent.output()).toMatch(/removed a partial segment pg_receivewal could not finish pre-allocating/);
      const restartDelays = [...agent.output().matchAll(/"restartInMs":(\d+)/g)].map((m) => Number(m[1]));
      console.log(
        `[fault 5] spool tmpfs ${SPOOL_BYTES / MiB} MiB filled to ${SPOOL_LEFT_FREE / MiB} MiB free: alert.critical.wal_spool_full ${alertAfterMs} ms after the disk filled; ` +
          `${restartCount} receiver restarts; archive caught up ${caughtUpMs} ms after the space returned; ${inserts} inserts; ` +
          `${partialsWhileFull} partial upload(s) in the archive while full; restart delays ${restartDelays.join(', ')} ms so far; chain of ${chain.segments} segments contiguous, ${chain.newlyVerified} more byte-identical to pg_wal, ${chain.partials} partial upload(s) whole and matching; alerts: ${alerts.map((a) => a.subject).join(', ')}`,
      );
    } finally {
      filler?.release();
      await writer.stop();
    }
  }, 240_000);
});
