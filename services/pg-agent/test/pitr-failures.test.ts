// Point-in-time restores that must fail cleanly (real PostgreSQL 15, filesystem storage): a key
// ring without the backup's key, a truncated archived segment, a segment missing from the middle
// of the archive, a target before the oldest base backup, a directory in use. Each failure names
// its cause, leaves no server running, and leaves the target directory as it was; with overwrite
// the original comes back byte for byte.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestRestore, TidemarkError } from '@tidemark/contracts';
import { WalArchive, createFsBackend, type StorageBackend } from '@tidemark/storage';
import { loadKeyRing, type KeyRing } from '@tidemark/pipeline';
import { handleRestoreRequested as handleRestoreRequestedUnsettled } from '../src/handlers/restore-requested.js';
import { pitrDeps, restoreContext, startPitrSource, stopRestoredServers, type PitrSource } from './pitr-fixture.js';
import { settling } from '@tidemark/testkit';
const handleRestoreRequested = settling(handleRestoreRequestedUnsettled);

const KEY_HEX = '7c'.repeat(32);
const OTHER_KEY_HEX = '3e'.repeat(32);

/** Every file and directory under `dir` with its mode and content hash: equal snapshots are byte-identical trees. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  const walk = async (current: string, prefix: string) => {
    for (const entry of (await readdir(current, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(current, entry.name);
      const mode = ((await stat(path)).mode & 0o7777).toString(8);
      if (entry.isDirectory()) {
        entries[`${prefix}${entry.name}/`] = mode;
        await walk(path, `${prefix}${entry.name}/`);
      } else {
        entries[`${prefix}${entry.name}`] = `${mode} ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
      }
    }
  };
  await walk(dir, '');
  return entries;
}

/** Processes whose command line mentions `dir` (a server left running there). */
async function processesIn(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return found;
}

/** A directory standing in for an operator's old data directory. */
async function makeOldDirectory(path: string): Promise<void> {
  await mkdir(join(path, 'base', '1'), { recursive: true });
  await writeFile(join(path, 'PG_VERSION'), '15\n');
  await writeFile(join(path, 'base', '1', '1259'), Buffer.alloc(8192, 7));
  await writeFile(join(path, 'postgresql.conf'), "port = 5999\n", { mode: 0o600 });
}

describe('point-in-time restore failures', () => {
  let source: PitrSource;
  let backend: StorageBackend;
  let storeRoot: string;
  let keys: KeyRing;
  let archive: WalArchive;
  /** Segments archived after the base backup ended (the replay needs them). */
  let replaySegments: string[];
  let baseStartedAt: string;
  const restored = new Set<string>();

  beforeAll(async () => {
    keys = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: KEY_HEX });
    storeRoot = await mkdtemp(join(tmpdir(), 'tidemark-pitr-store-'));
    backend = await createFsBackend({ root: storeRoot });
    archive = new WalArchive(backend);
    source = await startPitrSource(backend);
    await source.server.query('CREATE TABLE moments (id serial PRIMARY KEY, label text NOT NULL)', [], 'app');
    const base = await source.takeBaseBackup('base-1', keys.current);
    baseStartedAt = base.createdAt;
    await source.archiveWal(keys.current);
    replaySegments = [];
    for (let i = 0; i < 3; i += 1) {
      await source.server.query(`INSERT INTO moments (label) VALUES ('row ${i}')`, [], 'app');
      replaySegments.push(...(await source.archiveWal(keys.current)));
    }
  });

  afterAll(async () => {
    await stopRestoredServers(restored);
    if (source) await source.stop();
    await backend?.close();
    if (storeRoot) await rm(storeRoot, { recursive: true, force: true });
  });

  async function restore(name: string, request: Record<string, unknown>, ring: KeyRing = keys) {
    const deps = pitrDeps(source, backend, ring);
    const outcome = await handleRestoreRequested(RequestRestore.parse({ requestId: name, ...request }), deps, restoreContext());
    const done = deps.publisher.published.find((p) => p.subject === 'restore.completed.pg.main');
    if (done) restored.add(done.event.dataDirectory as string);
    const failed = deps.publisher.published.find((p) => p.subject === 'restore.failed.pg.main');
    return { outcome, error: failed?.event.error as { code: string; message: string } | undefined, published: deps.publisher.subjects() };
  }

  const restoresDir = () => join(source.workDir, 'restores');
  const leftovers = async () => (existsSync(restoresDir()) ? await readdir(restoresDir()) : []);

  it('a target time before the oldest base backup is RECOVERY_TARGET_UNREACHABLE, naming the oldest point', async () => {
    const before = new Date(Date.parse(baseStartedAt) - 3600_000).toISOString();
    const { outcome, error, published } = await restore('too-early', { pointInTime: { time: before } });
    expect(outcome.type).toBe('term');
    expect(error?.code).toBe('RECOVERY_TARGET_UNREACHABLE');
    expect(error?.message).toMatch(/the oldest point that can be restored is \d{4}-/);
    expect(published).toEqual(['restore.failed.pg.main']);
    expect(await leftovers()).toEqual([]);
  });

  it('a key ring without the backup key fails with ENCRYPTION_KEY_MISSING and leaves the target as it was', async () => {
    const wrongRing = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: OTHER_KEY_HEX });
    const fresh = await restore('wrong-key', { pointInTime: { latest: true } }, wrongRing);
    expect(fresh.error?.code).toBe('ENCRYPTION_KEY_MISSING');
    expect(await leftovers()).toEqual([]);

    const old = join(source.root, 'old-key');
    await makeOldDirectory(old);
    const before = await snapshot(old);
    const over = await restore('wrong-key-over', { pointInTime: { latest: true }, intoDirectory: old, overwrite: true }, wrongRing);
    expect(over.error?.code).toBe('ENCRYPTION_KEY_MISSING');
    expect(await snapshot(old)).toEqual(before);
    expect((await readdir(source.root)).filter((name) => name.startsWith('old-key.pre_restore_'))).toEqual([]);
  });

  it('a truncated archived segment aborts recovery with INTEGRITY_TRUNCATED: the server is stopped and the old directory is back', async () => {
    const victim = replaySegments[0]!;
    const manifest = (await archive.readManifest('main', source.systemIdentifier, victim))!;
    const object = join(storeRoot, ...manifest.data.key.split('/'));
    const saved = `${object}.saved`;
    await copyFile(object, saved);
    await truncate(object, Math.floor(manifest.data.storedBytes / 2));
    try {
      const old = join(source.root, 'old-truncated');
      await makeOldDirectory(old);
      const before = await snapshot(old);
      const { error } = await restore('truncated', { pointInTime: { latest: true }, intoDirectory: old, overwrite: true });
      expect(error?.code).toBe('INTEGRITY_TRUNCATED');
      expect(error?.message).toMatch(/recovery aborted/);
      expect(await snapshot(old)).toEqual(before);
      expect(await processesIn(old)).toEqual([]);
      expect((await readdir(dirname(old))).filter((name) => name.startsWith('old-truncated.pre_restore_'))).toEqual([]);
    } finally {
      await copyFile(saved, object);
      await rm(saved);
    }
  });

  it('a segment missing between archived ones is WAL_MISSING, not an early promotion', async () => {
    const victim = replaySegments[1]!;
    const manifest = (await archive.readManifest('main', source.systemIdentifier, victim))!;
    const copy = join(storeRoot, 'saved-victim');
    await copyFile(join(storeRoot, ...manifest.data.key.split('/')), copy);
    await archive.remove('main', source.systemIdentifier, victim);
    try {
      const { error } = await restore('gap', { pointInTime: { latest: true } });
      expect(error?.code).toBe('WAL_MISSING');
      expect(error?.message).toContain(victim);
      // Its own explanation, not the end-of-archive one, and no server log lines.
      expect(error?.message).not.toMatch(/does not exist|beyond the end|LOG:|FATAL:|UTC /);
      expect(await leftovers()).toEqual([]);
    } finally {
      await backend.save(manifest.data.key, await readFile(copy));
      await archive.commit(manifest);
      await rm(copy);
    }
  });

  it('a shutdown during the restore hands the command back and leaves nothing behind', async () => {
    const deps = pitrDeps(source, backend, keys);
    const controller = new AbortController();
    const publish = deps.publisher.publish.bind(deps.publisher);
    // Shut down as soon as the restore has started (the download is under way).
    const publisher = { ...deps.publisher, publish: async (...args: Parameters<typeof publish>) => { await publish(...args); if (args[0].startsWith('restore.started')) controller.abort(new TidemarkError('SHUTTING_DOWN', 'the service is shutting down')); } };
    const outcome = await handleRestoreRequested(RequestRestore.parse({ requestId: 'shutdown', pointInTime: { latest: true } }), { ...deps, publisher }, restoreContext({ signal: controller.signal }));
    expect(outcome).toMatchObject({ type: 'nak' });
    expect(deps.publisher.subjects()).toEqual(['restore.started.pg.main']);
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a directory in use or not empty: the running source data directory is never touched', async () => {
    const live = await restore('over-live', { pointInTime: { latest: true }, intoDirectory: source.server.dataDir, overwrite: true });
    expect(live.error?.code).toBe('RESTORE_TARGET_EXISTS');
    expect(live.error?.message).toMatch(/stop the server first/);
    expect(existsSync(join(source.server.dataDir, 'PG_VERSION'))).toBe(true);
    expect((await readdir(dirname(source.server.dataDir))).filter((name) => name.includes('pre_restore'))).toEqual([]);
    expect((await source.server.query<{ n: number }>('SELECT count(*)::int AS n FROM moments', [], 'app'))[0]?.n).toBe(3);

    const old = join(source.root, 'old-kept');
    await makeOldDirectory(old);
    const before = await snapshot(old);
    const refused = await restore('not-empty', { pointInTime: { latest: true }, intoDirectory: old });
    expect(refused.error?.code).toBe('RESTORE_TARGET_EXISTS');
    expect(refused.published).toEqual(['restore.failed.pg.main']);
    expect(await snapshot(old)).toEqual(before);

    // A port in use: refused before anything starts, and the old directory is put back.
    const busy = createServer();
    await new Promise<void>((listening) => busy.listen(0, '127.0.0.1', () => listening()));
    try {
      const port = (busy.address() as AddressInfo).port;
      const taken = await restore('port-taken', { pointInTime: { latest: true }, intoDirectory: old, intoPort: port, overwrite: true });
      expect(taken.error).toMatchObject({ code: 'RESTORE_TARGET_EXISTS', message: expect.stringContaining(`port ${port} is in use`) });
      expect(await snapshot(old)).toEqual(before);
    } finally {
      busy.close();
    }
  });
});
