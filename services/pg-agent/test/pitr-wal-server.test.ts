// The WAL path of a point-in-time restore without PostgreSQL: the agent's WAL server over real
// filesystem storage, and the restore_command script (scripts/wal-fetch.mjs) run as a process,
// through /bin/sh as PostgreSQL runs it. Exit codes are what PostgreSQL acts on: 0 the file is in
// place, 1 not archived (the end), 200 anything else (recovery aborts).
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_VERSION, type WalFileManifest } from '@tidemark/contracts';
import { WalArchive, createFsBackend, type StorageBackend } from '@tidemark/storage';
import { encodeStream, loadKeyRing, type KeyRing } from '@tidemark/pipeline';
import { createLogger } from '@tidemark/runtime';
import { osUserIds } from '@tidemark/pg';
import { WAL_FETCH_FILES, WAL_FETCH_SCRIPT, installWalFetch, segmentEndingAt, startWalServer, walFetchCommand, type WalServer } from '../src/restore/wal-server.js';

// A 1 MiB segment size (PostgreSQL allows 1 MiB to 1 GiB) keeps the files small.
const SEGMENT_SIZE = 1024 * 1024;
const SYSID = '7300000000000000001';
const logger = createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' });

interface Fetched {
  readonly code: number | null;
  readonly stderr: string;
}

/** Runs a restore_command the way PostgreSQL does: %f and %p substituted, through /bin/sh, in the data directory (as `as`, when given). */
function runRestoreCommand(command: string, file: string, cwd: string, as?: { uid: number; gid: number }): Promise<Fetched> {
  const line = command.replace(/%[fp%]/g, (token) => (token === '%f' ? file : token === '%p' ? 'pg_wal/RECOVERYXLOG' : '%'));
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', line], { cwd, ...(as ?? {}) }, (error, _stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr });
    });
  });
}

describe('WAL server and the restore_command script', () => {
  let root: string;
  let backend: StorageBackend;
  let archive: WalArchive;
  let keys: KeyRing;
  let server: WalServer;
  let dataDir: string;
  let sourceFile: string;
  const contents = new Map<string, Buffer>();

  async function put(file: string, bytes: Buffer, ring: KeyRing = keys, target = 'main'): Promise<WalFileManifest> {
    const encoded = encodeStream(Readable.from([bytes]), { compression: 'gzip', ...(ring.current ? { key: ring.current } : {}) });
    const [saved, summary] = await Promise.all([archive.saveData(target, SYSID, file, encoded.output as Readable), encoded.summary]);
    const manifest: WalFileManifest = {
      manifestVersion: MANIFEST_VERSION, engine: 'pg', target, systemIdentifier: SYSID, file,
      fileKind: file.endsWith('.partial') ? 'partial' : file.endsWith('.history') ? 'history' : 'segment',
      timeline: parseInt(file.slice(0, 8), 16), archivedAt: new Date().toISOString(), agent: { id: 't', version: '0' }, pipeline: summary.pipeline,
      data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
    };
    await archive.commit(manifest);
    contents.set(file, bytes);
    return manifest;
  }

  const segmentBytes = (seed: number) => Buffer.alloc(SEGMENT_SIZE, seed);
  const fetch = (file: string, command = walFetchCommand(sourceFile)) => runRestoreCommand(command, file, dataDir);
  const fetched = () => readFile(join(dataDir, 'pg_wal', 'RECOVERYXLOG'));

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'tidemark walserver %x '));
    await chmod(root, 0o755);
    backend = await createFsBackend({ root: join(root, 'store') });
    archive = new WalArchive(backend);
    keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '42'.repeat(32) });
    await put('000000010000000000000002', segmentBytes(2));
    await put('000000010000000000000003', segmentBytes(3));
    await put('000000040000000000000004.partial', Buffer.alloc(20_000, 4));
    // Timeline 5 lost the rest of segment 02: only its partial is archived, and segment 03 after it.
    await put('000000050000000000000002.partial', Buffer.alloc(20_000, 5));
    await put('000000050000000000000003', segmentBytes(3));
    await put('00000002.history', Buffer.from('1\t0/4000000\tno recovery target specified\n'));
    // A gap: 06 is missing while 07 exists.
    await put('000000010000000000000005', segmentBytes(5));
    await put('000000010000000000000007', segmentBytes(7));
    const truncated = await put('000000010000000000000008', segmentBytes(8));
    await truncate(join(root, 'store', ...truncated.data.key.split('/')), Math.floor(truncated.data.storedBytes / 2));
    await put('000000010000000000000009', segmentBytes(9), loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: '43'.repeat(32) }));

    server = await startWalServer({
      archive, target: 'main', systemIdentifier: SYSID, keys, walSegmentSize: SEGMENT_SIZE,
      backupEndSegment: '000000010000000000000002', logger,
    });
    dataDir = join(root, 'data');
    await mkdir(join(dataDir, 'pg_wal'), { recursive: true });
    sourceFile = join(dataDir, 'tidemark-wal-source');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(sourceFile, `${server.url}\n`, { mode: 0o600 });
  });

  afterAll(async () => {
    await server?.close();
    await backend?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('ships the script beside the module, and quotes paths with spaces, quotes and % for the shell and PostgreSQL', () => {
    expect(existsSync(WAL_FETCH_SCRIPT)).toBe(true);
    expect(walFetchCommand("/srv/it's 100%/url", '/usr/bin/node', '/app/fetch.mjs')).toBe(`'/usr/bin/node' '/app/fetch.mjs' '/srv/it'\\''s 100%%/url' %f %p`);
    expect(segmentEndingAt(1, 0x3000000n, 16 * 1024 * 1024)).toBe('000000010000000000000002');
    expect(segmentEndingAt(2, 0x3000001n, 16 * 1024 * 1024)).toBe('000000020000000000000003');
  });

  it("installs what restore_command runs into the data directory, owned by the server's user: nothing of the installation is run", async () => {
    const owner = await osUserIds('postgres');
    const own = join(root, 'own-data');
    await mkdir(join(own, 'pg_wal'), { recursive: true, mode: 0o700 });
    if (owner !== undefined) await chown(join(own, 'pg_wal'), owner.uid, owner.gid);
    if (owner !== undefined) await chown(own, owner.uid, owner.gid);
    const ownServer = await startWalServer({ archive, target: 'main', systemIdentifier: SYSID, keys, walSegmentSize: SEGMENT_SIZE, logger });
    const installed = await installWalFetch(own, ownServer.url, owner);
    const script = join(own, WAL_FETCH_FILES.script);
    const sourceFile = join(own, WAL_FETCH_FILES.source);
    expect(installed.restoreCommand).toBe(walFetchCommand(sourceFile, process.execPath, script));
    expect(installed.restoreCommand).not.toContain(WAL_FETCH_SCRIPT);
    expect(installed.restoreCommand).not.toContain(ownServer.url.split('/').at(-1)!);
    for (const path of [script, sourceFile]) {
      const info = await stat(path);
      expect(info.mode & 0o777).toBe(0o600);
      if (owner !== undefined) expect([info.uid, info.gid]).toEqual([owner.uid, owner.gid]);
    }
    expect(await readFile(script, 'utf8')).toBe(await readFile(WAL_FETCH_SCRIPT, 'utf8'));
    // Run as the server's user, as PostgreSQL runs it.
    expect(await runRestoreCommand(installed.restoreCommand, '000000010000000000000002', own, owner)).toEqual({ code: 0, stderr: '' });
    expect((await readFile(join(own, 'pg_wal', 'RECOVERYXLOG'))).equals(contents.get('000000010000000000000002')!)).toBe(true);
    await ownServer.close();
    await installed.remove();
    await installed.remove();
    expect(existsSync(script) || existsSync(sourceFile)).toBe(false);
  });

  it('delivers a segment and a history file: exit 0, the exact bytes, no temporary file left', async () => {
    expect(await fetch('000000010000000000000002')).toEqual({ code: 0, stderr: '' });
    expect((await fetched()).equals(contents.get('000000010000000000000002')!)).toBe(true);
    // The next segment was decoded ahead, while "replay" went on.
    expect(await fetch('000000010000000000000003')).toEqual({ code: 0, stderr: '' });
    expect((await fetched()).equals(contents.get('000000010000000000000003')!)).toBe(true);
    expect(server.fetches.find((f) => f.file === '000000010000000000000003')).toMatchObject({ outcome: 'file', prefetched: true, bytes: SEGMENT_SIZE });
    expect(await fetch('00000002.history')).toEqual({ code: 0, stderr: '' });
    expect((await fetched()).toString()).toContain('no recovery target specified');
    expect((await readdir(join(dataDir, 'pg_wal'))).filter((name) => name.endsWith('.tidemark-tmp'))).toEqual([]);
  });

  it('falls back to the uploaded partial segment, padded with zeros to a whole segment', async () => {
    expect((await fetch('000000040000000000000004')).code).toBe(0);
    const bytes = await fetched();
    expect(bytes.length).toBe(SEGMENT_SIZE);
    expect(bytes.subarray(0, 20_000).equals(Buffer.alloc(20_000, 4))).toBe(true);
    expect(bytes.subarray(20_000).every((byte) => byte === 0)).toBe(true);
  });

  it('answers exit 1, quietly, for what the archive does not hold past its end', async () => {
    expect(await fetch('00000003.history')).toEqual({ code: 1, stderr: '' });
    expect(await fetch('00000001000000000000000A')).toEqual({ code: 1, stderr: '' });
    expect(await fetch('000000020000000000000003')).toEqual({ code: 1, stderr: '' });
    expect(server.firstError()).toBeUndefined();
  });

  it('aborts (exit 200) on a gap, a truncated object or a missing key, and records the first error', async () => {
    const gap = await fetch('000000010000000000000006');
    expect(gap.code).toBe(200);
    expect(gap.stderr).toMatch(/^tidemark-wal-fetch: 000000010000000000000006: the pg-agent could not serve it \(HTTP 500\): WAL_MISSING: WAL segment 000000010000000000000006 is missing/);
    expect(server.firstError()?.code).toBe('WAL_MISSING');

    const truncated = await fetch('000000010000000000000008');
    expect(truncated.code).toBe(200);
    expect(truncated.stderr).toMatch(/INTEGRITY_TRUNCATED|broke off|received \d+ of/);
    const keyless = await fetch('000000010000000000000009');
    expect(keyless.code).toBe(200);
    expect(keyless.stderr).toMatch(/HTTP 500\): ENCRYPTION_KEY_MISSING: archived WAL 000000010000000000000009: /);
    const errors = server.fetches.filter((f) => f.outcome === 'error').map((f) => f.file);
    expect(errors).toEqual(['000000010000000000000006', '000000010000000000000008', '000000010000000000000009']);
    expect(server.filesServed()).toBe(4);
  });

  it('a partial segment followed by later closed segments is lost WAL (WAL_MISSING), not the end of the archive', async () => {
    const lost = await fetch('000000050000000000000002');
    expect(lost.code).toBe(200);
    expect(lost.stderr).toMatch(/WAL_MISSING: WAL segment 000000050000000000000002 is only partly archived/);
  });

  it('refuses a request without the token with 403 (never 404, which would end recovery early)', async () => {
    const wrong = walFetchCommand(`${server.url.replace(/\/[^/]+$/, '/not-the-token')}`);
    const result = await fetch('000000010000000000000003', wrong);
    expect(result.code).toBe(200);
    expect(result.stderr).toContain('HTTP 403');
  });

  it('a 404 from anything but the WAL server (a reused port) is a failure, not the end of the archive', async () => {
    const stranger = createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((listening) => stranger.listen(0, '127.0.0.1', listening));
    try {
      const { port } = stranger.address() as AddressInfo;
      const result = await fetch('000000010000000000000009', walFetchCommand(`http://127.0.0.1:${port}/token`));
      expect(result.code).toBe(200);
      expect(result.stderr).toContain('HTTP 404');
    } finally {
      await new Promise((closed) => stranger.close(closed));
    }
  });

  it('exits 200 with a clear message when the agent is gone', async () => {
    const gone = await startWalServer({ archive, target: 'main', systemIdentifier: SYSID, keys, walSegmentSize: SEGMENT_SIZE, logger });
    const url = gone.url;
    await gone.close();
    const result = await fetch('000000010000000000000003', walFetchCommand(url));
    expect(result.code).toBe(200);
    expect(result.stderr).toBe('tidemark-wal-fetch: 000000010000000000000003: the pg-agent serving this restore is gone (connection refused); the restore cannot continue\n');
  });

  it('serves the newest segment while the archiver replaces its partial: never a 404 or a failure for a file that exists', async () => {
    const target = 'racing';
    const closed = '000000010000000000000011';
    const open = '000000010000000000000012';
    await put(`${closed}.partial`, Buffer.alloc(30_000, 0x11), keys, target);
    await put(`${open}.partial`, Buffer.alloc(10_000, 0x12), keys, target);
    // The archiver's moves, run at the worst moments: the segment is committed (then its partial
    // removed) between the server's read of the segment and of the partial; the open segment's
    // partial is uploaded again (the old data object removed) between its manifest read and the open.
    const racing = Object.create(archive) as WalArchive;
    let closeSegment = true;
    racing.readManifest = async (t, sysid, file) => {
      if (closeSegment && file === `${closed}.partial`) {
        closeSegment = false;
        await put(closed, segmentBytes(0x11), keys, target);
        await archive.remove(target, SYSID, `${closed}.partial`);
      }
      return archive.readManifest(t, sysid, file);
    };
    let growPartial = true;
    racing.openData = async (manifest) => {
      if (growPartial && manifest.file === `${open}.partial`) {
        growPartial = false;
        await put(`${open}.partial`, Buffer.alloc(20_000, 0x12), keys, target);
      }
      return archive.openData(manifest);
    };
    const raced = await startWalServer({ archive: racing, target, systemIdentifier: SYSID, keys, walSegmentSize: SEGMENT_SIZE, prefetch: 0, logger });
    try {
      const command = walFetchCommand(raced.url);
      expect(await fetch(closed, command)).toEqual({ code: 0, stderr: '' });
      expect((await fetched()).equals(segmentBytes(0x11))).toBe(true);
      expect(await fetch(open, command)).toEqual({ code: 0, stderr: '' });
      const bytes = await fetched();
      expect(bytes.subarray(0, 20_000).equals(Buffer.alloc(20_000, 0x12))).toBe(true);
      expect(bytes.subarray(20_000).every((byte) => byte === 0)).toBe(true);
      expect(raced.fetches.map((f) => [f.file, f.outcome])).toEqual([[closed, 'file'], [open, 'partial']]);
      expect(raced.firstError()).toBeUndefined();
    } finally {
      await raced.close();
    }
  });
});
