// The WAL archiver's logic with small fakes for the server and pg_receivewal (the real ones are
// in wal-pg.test.ts): what is uploaded, when, with which positions and events; idempotency;
// partials of a timeline that ended; monitoring and its rate limit. Storage is the real
// in-memory backend, the pipeline is real (zstd/gzip + AES-GCM).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError, type WalFileManifest } from '@tidemark/contracts';
import { WAL_SEGMENT_SIZE, type WalReceiver, type WalReceiverOptions } from '@tidemark/pg';
import { decodeStream, keyRingOf, type KeyRing } from '@tidemark/pipeline';
import { createMemoryBackend, guardBackend, WalArchive, type Guard } from '@tidemark/storage';
import { eventually, makeTempDir, recordingPublisher, removeTempDir, type RecordingPublisher } from '@tidemark/testkit';
import { parseConfig } from '@tidemark/config';
import { mkdir, readdir, readlink, stat } from 'node:fs/promises';
import { WalArchiver, type WalArchiverOptions } from '../src/wal/archiver.js';
import { parseHistory, readSegmentHeader } from '../src/wal/segment-file.js';
import { answerWalStatus } from '../src/handlers/status-wal.js';
import { createWalArchivers } from '../src/wal/start.js';
import { LagTracker } from '../src/wal/lag.js';
import type { PrimarySample, WalPrimary } from '../src/wal/primary.js';

const SYSID = '7301234567890123456';
const MiB = 1024 * 1024;
const SEG = BigInt(WAL_SEGMENT_SIZE);

describe('lag tracker', () => {
  it('is 0 when the archive holds everything the primary wrote, else the age of the first sample after the archive end', () => {
    const lag = new LagTracker();
    expect(lag.lagSeconds(0, undefined)).toBeUndefined();
    lag.record(1_000, 100n);
    lag.record(2_000, 200n);
    lag.record(3_000, 300n);
    expect(lag.lagSeconds(3_500, 300n)).toBe(0);
    expect(lag.lagSeconds(3_500, 400n)).toBe(0);
    // Archived up to 250: byte 250 was written after the sample at 2 s (lsn 200): at most 1.5 s old.
    expect(lag.lagSeconds(3_500, 250n)).toBe(1.5);
    expect(lag.lagSeconds(3_500, 200n)).toBe(1.5);
    // Nothing archived yet, or behind every sample: the time since the first sample (a lower bound).
    expect(lag.lagSeconds(3_500, undefined)).toBe(2.5);
    expect(lag.lagSeconds(3_500, 50n)).toBe(2.5);
  });

  it('prunes what can no longer matter, restarts on a backwards LSN and thins a long ring', () => {
    const lag = new LagTracker(8);
    for (let i = 0; i < 5; i += 1) lag.record(i * 1000, BigInt(i * 100));
    lag.prune(250n);
    expect(lag.size).toBe(3); // 200, 300, 400
    expect(lag.lagSeconds(5_000, 250n)).toBe(3);
    lag.record(6_000, 10n); // another cluster
    expect(lag.size).toBe(1);
    for (let i = 0; i < 20; i += 1) lag.record(7_000 + i * 1000, BigInt(100 + i));
    expect(lag.size).toBeLessThanOrEqual(8);
    expect(lag.latest()?.lsn).toBe(119n);
    expect(lag.lagSeconds(30_000, 5n)).toBe(24); // still bounded by the oldest sample kept (6 s)
  });
});

describe('wal file helpers', () => {
  it('parses the switch points of a history file', () => {
    const points = parseHistory('1\t0/5000060\tno recovery target specified\n\n2\t0/7A3B2C0\tat restore point "x"\n');
    expect([...points]).toEqual([
      [1, 0x5000060n],
      [2, 0x7a3b2c0n],
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------

/** A segment file as PostgreSQL writes it: a long page header, then `fill` bytes, then zeros. */
function segmentBytes(name: string, options: { sysid?: string; fill?: number; seed?: number } = {}): Buffer {
  const buffer = Buffer.alloc(WAL_SEGMENT_SIZE);
  const start = (BigInt(parseInt(name.slice(8, 16), 16)) << 32n) + BigInt(parseInt(name.slice(16, 24), 16)) * SEG;
  buffer.writeUInt16LE(0xd110, 0);
  buffer.writeUInt16LE(0x0002, 2);
  buffer.writeUInt32LE(parseInt(name.slice(0, 8), 16), 4);
  buffer.writeBigUInt64LE(start, 8);
  buffer.writeBigUInt64LE(BigInt(options.sysid ?? SYSID), 24);
  buffer.writeUInt32LE(WAL_SEGMENT_SIZE, 32);
  buffer.writeUInt32LE(8192, 36);
  const fill = options.fill ?? 64 * 1024;
  randomBytes(fill).copy(buffer, 40);
  return buffer;
}

interface Fakes {
  readonly archiver: WalArchiver;
  readonly archive: WalArchive;
  readonly published: RecordingPublisher;
  readonly server: { current: bigint; restart: bigint | undefined; active: boolean; timeline: number; sysid: string; down: boolean };
  readonly receiver: { running: boolean; stopped: boolean };
  options(): WalReceiverOptions;
  readonly clock: { now: number };
  readonly logs: string[];
}

const key = { id: 'test-key', key: randomBytes(32) };
const keys: KeyRing = keyRingOf(key);

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('tidemark-wal-archiver-');
});
afterAll(async () => {
  await removeTempDir(dir);
});

const running: WalArchiver[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
});

function fakes(overrides: Partial<WalArchiverOptions> = {}): Fakes {
  const server = { current: 0x3000000n, restart: 0x3000000n as bigint | undefined, active: true, timeline: 1, sysid: SYSID, down: false };
  const receiver = { running: true, stopped: false };
  const clock = { now: Date.parse('2025-06-01T00:00:00Z') };
  const logs: string[] = [];
  let captured: WalReceiverOptions | undefined;
  const primary: WalPrimary = {
    async sample(): Promise<PrimarySample> {
      if (server.down) throw new TidemarkError('SOURCE_UNAVAILABLE', 'connect ECONNREFUSED');
      return {
        systemIdentifier: server.sysid,
        timeline: server.timeline,
        inRecovery: false,
        currentLsn: server.current,
        slot: server.restart === undefined ? undefined : { active: server.active, restartLsn: server.restart, walStatus: 'reserved' },
      };
    },
    async close() {},
  };
  const published = recordingPublisher();
  const archive = new WalArchive(createMemoryBackend());
  const log = (level: string) => (details: object, message: string) => logs.push(`${level} ${message} ${JSON.stringify(details)}`);
  const archiver = new WalArchiver({
    target: 'main',
    slot: 'tidemark_main',
    spoolDir: join(dir, 'spool'),
    osUser: 'postgres',
    partialIntervalSeconds: 1,
    maxSlotRetainedMb: 64,
    maxLagSeconds: 60,
    encode: { compression: 'zstd', key },
    keys,
    archive,
    publisher: published,
    primary,
    startReceiver: async (options) => {
      captured = options;
      const fake: WalReceiver = {
        status: () => ({ running: receiver.running, pid: receiver.running ? 4242 : undefined, restarts: 0, lastSegment: undefined, lastFlushLsn: undefined }),
        stop: async () => {
          receiver.stopped = true;
          receiver.running = false;
        },
      };
      return fake;
    },
    agent: { id: 'pg-agent-test', version: '0.0.0' },
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    clock: () => new Date(clock.now),
    tickMs: 20,
    startRetryMs: { initial: 20, max: 50 },
    ...overrides,
  });
  running.push(archiver);
  return {
    archiver,
    archive,
    published,
    server,
    receiver,
    clock,
    logs,
    options: () => {
      if (captured === undefined) throw new Error('the receiver was not started');
      return captured;
    },
  };
}

async function started(overrides: Partial<WalArchiverOptions> = {}): Promise<Fakes> {
  const f = fakes(overrides);
  f.archiver.start();
  await eventually(() => f.archiver.status().state === 'running', 5_000, 'the receiver to start');
  return f;
}

async function writeFileIn(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, `${randomBytes(4).toString('hex')}-${name}`);
  await writeFile(path, bytes);
  return path;
}

async function decoded(archive: WalArchive, manifest: WalFileManifest): Promise<Buffer> {
  const stream = decodeStream(await archive.openData(manifest), { pipeline: manifest.pipeline, sha256: manifest.data.sha256, storedBytes: manifest.data.storedBytes }, keys);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** How many of this process's file descriptors are open on `path`. */
async function descriptorsOpenOn(path: string): Promise<number> {
  const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((target) => target === path).length;
}

const events = (f: Fakes, kind = 'wal.archived') => f.published.published.filter((p) => p.subject.startsWith(kind));

describe('wal archiver (fake server and receiver)', () => {
  it('commits a closed segment encrypted, announces it with its range and lag, and drops its partial upload', async () => {
    const f = await started();
    expect(f.options()).toMatchObject({ slot: 'tidemark_main', dir: join(dir, 'spool'), osUser: 'postgres', statusIntervalSeconds: 1 });
    const name = '000000010000000000000003';
    const bytes = segmentBytes(name);
    // An earlier partial upload of the segment (the flush position inside it).
    f.server.restart = 0x3001000n;
    f.server.current = 0x3002000n;
    await f.options().onPartial?.(await writeFileIn(`${name}.partial`, bytes), `${name}.partial`);
    expect((await f.archive.list('main')).map((x) => x.file)).toEqual([`${name}.partial`]);

    f.server.restart = 0x4000000n;
    f.server.current = 0x4000100n;
    await f.options().onSegment(await writeFileIn(name, bytes), name);
    expect((await f.archive.list('main', SYSID)).map((x) => x.file)).toEqual([name]);
    const manifest = (await f.archive.readManifest('main', SYSID, name)) as WalFileManifest;
    expect(manifest).toMatchObject({ fileKind: 'segment', timeline: 1, startLsn: '0/3000000', endLsn: '0/4000000', systemIdentifier: SYSID, agent: { id: 'pg-agent-test' } });
    expect(manifest.pipeline.encryption?.keyId).toBe('test-key');
    expect(manifest.data.rawBytes).toBe(WAL_SEGMENT_SIZE);
    expect(manifest.data.storedBytes).toBeLessThan(WAL_SEGMENT_SIZE / 100); // zeros cost nothing
    expect((await decoded(f.archive, manifest)).equals(bytes)).toBe(true);

    const archived = events(f);
    expect(archived.map((e) => [e.event['fileKind'], e.event['file'], e.event['endLsn'], e.msgId])).toEqual([
      ['partial', `${name}.partial`, '0/3001000', `wal:${SYSID}:${name}.partial:0/3001000`],
      ['segment', name, '0/4000000', `wal:${SYSID}:${name}`],
    ]);
    expect(archived[1]?.event).toMatchObject({ engine: 'pg', target: 'main', systemIdentifier: SYSID, startLsn: '0/3000000', lagBytes: 0x100, storedBytes: manifest.data.storedBytes });
    expect(archived[1]?.subject).toBe('wal.archived.pg.main');
    expect(f.archiver.status()).toMatchObject({ archivedEndLsn: '0/4000000', lastArchived: { file: name, fileKind: 'segment' }, uploads: { segments: 1, partials: 1 } });
  });

  it('a segment offered again with the same bytes is only announced again; a history file with new content is committed anew', async () => {
    const f = await started();
    const name = '000000010000000000000005';
    const path = await writeFileIn(name, segmentBytes(name));
    await f.options().onSegment(path, name);
    const first = (await f.archive.readManifest('main', SYSID, name)) as WalFileManifest;
    await f.options().onSegment(path, name); // after a restart of the agent
    const again = (await f.archive.readManifest('main', SYSID, name)) as WalFileManifest;
    expect(again.data.key).toBe(first.data.key);
    expect(events(f).map((e) => e.msgId)).toEqual([`wal:${SYSID}:${name}`, `wal:${SYSID}:${name}`]);

    const history = '00000002.history';
    await f.options().onSegment(await writeFileIn(history, Buffer.from('1\t0/5000060\tno recovery target specified\n')), history);
    const h1 = (await f.archive.readManifest('main', SYSID, history)) as WalFileManifest;
    await f.options().onSegment(await writeFileIn(history, Buffer.from('1\t0/5000060\tno recovery target specified\n')), history);
    expect(((await f.archive.readManifest('main', SYSID, history)) as WalFileManifest).data.key).toBe(h1.data.key);
    const rewritten = Buffer.from('1\t0/5000088\tbefore 2025-06-01 00:00:00+00\n');
    await f.options().onSegment(await writeFileIn(history, rewritten), history);
    const h2 = (await f.archive.readManifest('main', SYSID, history)) as WalFileManifest;
    expect(h2.data.key).not.toBe(h1.data.key);
    expect(h2).toMatchObject({ fileKind: 'history', timeline: 2 });
    expect(h2.startLsn).toBeUndefined();
    expect((await decoded(f.archive, h2)).equals(rewritten)).toBe(true);
    const historyIds = events(f).filter((e) => e.event['fileKind'] === 'history').map((e) => e.msgId);
    expect(historyIds).toHaveLength(3);
    expect(new Set(historyIds).size).toBe(2); // the same content keeps its id (deduplicated), new content gets a new one
  });

  it('uploads the open segment only when its flushed end grew, never past the segment, and not while empty', async () => {
    const f = await started();
    const name = '000000010000000000000006.partial';
    const path = await writeFileIn(name, segmentBytes(name));
    const offer = () => f.options().onPartial?.(path, name);
    f.server.restart = 0x5ffff00n; // flushed position still in the previous segment
    await offer();
    expect(events(f)).toHaveLength(0);
    f.server.restart = 0x6000200n;
    await offer();
    await offer(); // not grown
    f.server.restart = 0x6000400n;
    await offer();
    f.server.restart = 0x7000010n; // the segment closed meanwhile: the partial is whole
    await offer();
    expect(events(f).map((e) => e.event['endLsn'])).toEqual(['0/6000200', '0/6000400', '0/7000000']);
    const manifest = (await f.archive.readManifest('main', SYSID, name)) as WalFileManifest;
    expect(manifest).toMatchObject({ fileKind: 'partial', startLsn: '0/6000000', endLsn: '0/7000000' });
    expect(manifest.data.rawBytes).toBe(WAL_SEGMENT_SIZE);

    const empty = '000000010000000000000007.partial';
    await f.options().onPartial?.(await writeFileIn(empty, Buffer.alloc(WAL_SEGMENT_SIZE)), empty);
    expect(await f.archive.readManifest('main', SYSID, empty)).toBeUndefined();
  });

  it('an upload the storage refuses without reading it (its breaker is open) fails at once and closes the file; the next offer uploads', async () => {
    let refusing = true;
    const guard: Guard = (_operation, call) => (refusing ? Promise.reject(new TidemarkError('BREAKER_OPEN', 'storage is failing repeatedly; calls are paused, retry later')) : call());
    const archive = new WalArchive(guardBackend(createMemoryBackend(), guard));
    const f = await started({ archive });
    const name = '000000010000000000000008.partial';
    const path = await writeFileIn(name, segmentBytes(name));
    f.server.restart = 0x8000200n;
    await expect(f.options().onPartial?.(path, name)).rejects.toMatchObject({ code: 'BREAKER_OPEN' });
    await eventually(async () => (await descriptorsOpenOn(path)) === 0, 5_000, `${name} to be closed`);
    refusing = false;
    await f.options().onPartial?.(path, name);
    expect(await archive.readManifest('main', SYSID, name)).toMatchObject({ fileKind: 'partial', endLsn: '0/8000200' });
  });

  it('the partial of a timeline that ended is archived up to its switch point', async () => {
    const f = await started();
    await f.options().onSegment(await writeFileIn('00000002.history', Buffer.from('1\t0/9000100\tno recovery target specified\n')), '00000002.history');
    f.server.timeline = 2;
    f.server.restart = 0x9000800n; // timeline 2 is past the switch
    const old = '000000010000000000000009.partial';
    await f.options().onPartial?.(await writeFileIn(old, segmentBytes(old)), old);
    expect(await f.archive.readManifest('main', SYSID, old)).toMatchObject({ fileKind: 'partial', timeline: 1, endLsn: '0/9000100' });
    const current = '000000020000000000000009.partial';
    await f.options().onPartial?.(await writeFileIn(current, segmentBytes(current)), current);
    expect(await f.archive.readManifest('main', SYSID, current)).toMatchObject({ fileKind: 'partial', timeline: 2, endLsn: '0/9000800' });
  });

  it('the partial of a timeline that ended fails (so the receiver keeps it) while the server cannot say how far it is flushed', async () => {
    const f = await started();
    await f.options().onSegment(await writeFileIn('00000002.history', Buffer.from('1\t0/B000100\tno recovery target specified\n')), '00000002.history');
    const old = '00000001000000000000000B.partial';
    const path = await writeFileIn(old, segmentBytes(old));
    f.server.down = true;
    await expect(f.options().onPartial?.(path, old)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    f.server.down = false;
    f.server.restart = undefined; // the slot is gone (it is recreated before streaming resumes)
    await expect(f.options().onPartial?.(path, old)).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE' });
    expect(await f.archive.readManifest('main', SYSID, old)).toBeUndefined();
    f.server.timeline = 2;
    f.server.restart = 0xb000800n;
    await f.options().onPartial?.(path, old);
    expect(await f.archive.readManifest('main', SYSID, old)).toMatchObject({ fileKind: 'partial', timeline: 1, endLsn: '0/B000100' });
    // The open segment of the current timeline still just waits for the next interval.
    f.server.down = true;
    const current = '00000002000000000000000B.partial';
    await f.options().onPartial?.(await writeFileIn(current, segmentBytes(current)), current);
    expect(await f.archive.readManifest('main', SYSID, current)).toBeUndefined();
  });

  it('refuses a file of another cluster and one that is not a segment', async () => {
    const f = await started();
    const name = '00000001000000000000000A';
    const foreign = await writeFileIn(name, segmentBytes(name, { sysid: '7300000000000000001' }));
    await expect(f.options().onSegment(foreign, name)).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    const garbage = Buffer.alloc(WAL_SEGMENT_SIZE, 7);
    await expect(f.options().onSegment(await writeFileIn(name, garbage), name)).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT' });
    expect(await f.archive.list('main')).toEqual([]);
    expect(await readSegmentHeader(await writeFileIn('zeros', Buffer.alloc(100)))).toBeUndefined();
  });

  it('reports slot growth at most once per interval, with a time-bucketed message id', async () => {
    const f = await started({ maxSlotRetainedMb: 1 });
    f.server.restart = 0x3000000n;
    f.server.current = 0x3000000n + BigInt(3 * MiB);
    f.server.active = false;
    await eventually(() => events(f, 'wal.problem').length > 0, 5_000, 'a slot_growth problem');
    await new Promise((resolve) => setTimeout(resolve, 150)); // several more ticks
    const problems = events(f, 'wal.problem');
    expect(problems).toHaveLength(1);
    expect(problems[0]?.subject).toBe('wal.problem.pg.main');
    expect(problems[0]?.event).toMatchObject({ problem: 'slot_growth', retainedBytes: 3 * MiB, limitBytes: MiB, systemIdentifier: SYSID });
    expect(problems[0]?.event['summary']).toMatch(/holds back 3 MiB.*inactive/);
    f.clock.now += 10 * 60_000;
    const slotGrowth = () => events(f, 'wal.problem').filter((e) => e.event['problem'] === 'slot_growth');
    await eventually(() => slotGrowth().length === 2, 5_000, 'the next slot_growth problem');
    expect(new Set(slotGrowth().map((e) => e.msgId)).size).toBe(2);
  });

  it('reports lagging when the archive falls behind, or when the receiver has been down too long', async () => {
    const f = await started({ maxLagSeconds: 30 });
    f.server.current = 0x3000100n;
    await eventually(() => f.archiver.status().primaryLsn === '0/3000100', 5_000, 'a sample');
    f.clock.now += 31_000;
    await eventually(() => events(f, 'wal.problem').length > 0, 5_000, 'a lagging problem');
    expect(events(f, 'wal.problem')[0]?.event).toMatchObject({ problem: 'lagging', limitSeconds: 30 });
    expect(events(f, 'wal.problem')[0]?.event['summary']).toMatch(/archive of main is 3\d s behind/);
    expect(f.archiver.health().ok).toBe(false);

    const g = await started({ maxLagSeconds: 30 });
    g.receiver.running = false;
    await new Promise((resolve) => setTimeout(resolve, 60));
    g.clock.now += 40_000;
    await eventually(() => events(g, 'wal.problem').length > 0, 5_000, 'a lagging problem');
    expect(events(g, 'wal.problem')[0]?.event['summary']).toMatch(/receiver of main has been down for 40 s/);
    expect(g.archiver.status().state).toBe('receiver down');
  });

  it('health is degraded (not ok, not failing) as soon as the server stops answering, long before maxLagSeconds; it recovers by itself', async () => {
    const f = await started({ maxLagSeconds: 300 });
    expect(f.archiver.health()).toMatchObject({ ok: true, detail: { receiverUp: true, sourceReachable: true } });
    expect(f.archiver.health()).not.toHaveProperty('degraded');
    const downAt = f.clock.now;
    f.server.down = true;
    await eventually(() => f.archiver.status().sourceReachable === false, 5_000, 'a failed sample');
    f.clock.now += 2_000;
    expect(f.archiver.health()).toMatchObject({
      ok: false, degraded: true,
      detail: { state: 'receiver down', receiverUp: false, receiverDownSince: new Date(downAt).toISOString(), receiverDownSeconds: 2 },
    });
    expect(answerWalStatus({}, { agent: 'pg-agent-test', archivers: [f.archiver], refused: [] })).toEqual({
      agent: 'pg-agent-test',
      receivers: [{ target: 'main', state: 'receiver down', receiverUp: false, downSince: new Date(downAt).toISOString(), lastError: 'connect ECONNREFUSED', lagSeconds: expect.any(Number) }],
    });
    f.server.down = false;
    await eventually(() => f.archiver.health().ok, 5_000, 'the server answering again');
    expect(f.archiver.status()).toMatchObject({ state: 'running', receiverUp: true, receiverDownSince: undefined });
  });

  it('status.wal answers per target, refused ones included, and rejects a malformed request', async () => {
    const f = await started();
    const refused = [{ target: 'nokey', error: new TidemarkError('CONFIG_INVALID', 'target "nokey" requires encryption but no key is configured') }];
    const reply = answerWalStatus({ target: 'nokey' }, { agent: 'a', archivers: [f.archiver], refused });
    expect(reply).toEqual({ agent: 'a', receivers: [{ target: 'nokey', state: 'refused', receiverUp: false, lastError: refused[0]?.error.message }] });
    expect(answerWalStatus(undefined, { agent: 'a', archivers: [f.archiver], refused })).toMatchObject({ receivers: [{ target: 'main', receiverUp: true }, { target: 'nokey' }] });
    expect(answerWalStatus({ target: 'Bad Name' }, { agent: 'a', archivers: [], refused: [] })).toMatchObject({ error: { code: 'COMMAND_INVALID' } });
  });

  it('follows a re-initialised cluster: a spool of the old one is moved aside, archiving restarts under the new identifier', async () => {
    const spoolDir = join(dir, `spool-${randomBytes(4).toString('hex')}`);
    await mkdir(spoolDir);
    const stale = '000000010000000000000002';
    await writeFile(join(spoolDir, stale), segmentBytes(stale, { sysid: '7300000000000000001' }));
    const f = await started({ spoolDir });
    expect(await readdir(`${spoolDir}.cluster-7300000000000000001`)).toEqual([stale]);
    expect(f.logs.some((line) => line.includes('belongs to another cluster'))).toBe(true);
    const firstOptions = f.options();

    const next = '7399999999999999999';
    f.server.sysid = next;
    await eventually(() => f.archiver.status().systemIdentifier === next && f.options() !== firstOptions, 5_000, 'archiving of the new cluster');
    expect(f.receiver.stopped).toBe(true);
    const name = '000000010000000000000003';
    f.receiver.running = true;
    await f.options().onSegment(await writeFileIn(name, segmentBytes(name, { sysid: next })), name);
    expect((await f.archive.list('main')).map((x) => `${x.systemIdentifier}/${x.file}`)).toEqual([`${next}/${name}`]);
  });

  it('keeps retrying an unreachable server in the background and stops cleanly', async () => {
    const f = fakes({ maxLagSeconds: 5 });
    f.server.down = true;
    f.archiver.start();
    await eventually(() => f.logs.some((l) => l.includes('cannot start wal archiving yet')), 5_000, 'a few failed attempts');
    expect(f.archiver.status()).toMatchObject({ state: 'starting', lastError: expect.stringContaining('ECONNREFUSED') });
    f.clock.now += 6_000;
    await eventually(() => events(f, 'wal.problem').length > 0, 5_000, 'a lagging problem');
    expect(f.archiver.health()).toMatchObject({ ok: false });
    f.server.down = false;
    await eventually(() => f.archiver.status().state === 'running', 2_000, 'the receiver to start');
    await f.archiver.stop();
    expect(f.receiver.stopped).toBe(true);
    expect(f.archiver.status().state).toBe('stopped');
  });

  it('a stop while the server is unreachable returns at once', async () => {
    const f = fakes({ startRetryMs: { initial: 60_000, max: 60_000 } });
    f.server.down = true;
    f.archiver.start();
    await eventually(() => f.logs.some((l) => l.includes('cannot start wal archiving yet')), 5_000, 'a failed attempt');
    const before = Date.now();
    await f.archiver.stop();
    expect(Date.now() - before).toBeLessThan(1000);
    expect(f.receiver.stopped).toBe(false);
  });
});

describe('wal archivers from the config', () => {
  it('makes one archiver per pg target with wal.enabled, and refuses one that must encrypt without a key', async () => {
    const yaml = `
storage: { type: fs, root: ${dir}/unused }
defaults: { encrypt: false }
pg: { workDir: ${dir}/work }
targets:
  - name: orders-db
    engine: pg
    postgres: { host: 127.0.0.1, port: 1, user: postgres, database: app }
    wal: { enabled: true, partialIntervalSeconds: 2 }
  - name: billing
    engine: pg
    encrypt: true
    postgres: { host: 127.0.0.1, port: 1, user: postgres, database: app }
    wal: { enabled: true }
  - name: quiet
    engine: pg
    postgres: { host: 127.0.0.1, port: 1, user: postgres, database: app }
`;
    const config = parseConfig(yaml, join(dir, 'tidemark.yaml'), {});
    const setup = await createWalArchivers({
      config,
      keys: keyRingOf(undefined),
      archive: new WalArchive(createMemoryBackend()),
      publisher: recordingPublisher(),
      agent: { id: 'a', version: '0' },
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    expect(setup.archivers.map((a) => a.target)).toEqual(['orders-db']);
    expect(setup.archivers[0]?.status()).toMatchObject({ slot: 'tidemark_orders_db', state: 'starting' });
    expect(setup.refused.map((r) => [r.target, r.error.code])).toEqual([['billing', 'CONFIG_INVALID']]);
    expect(setup.refused[0]?.error.message).toMatch(/TIDEMARK_ENCRYPTION_KEY/);
    // The spool's parent exists and lets pg_receivewal (another OS user) through.
    expect((await stat(join(dir, 'work', 'wal'))).mode & 0o777).toBe(0o711);
    await Promise.all(setup.archivers.map((a) => a.stop()));
  });
});
