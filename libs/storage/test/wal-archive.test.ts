// The WAL archive (libs/storage wal-archive.ts) on every backend: memory, fs and a real S3
// endpoint (s3rver), like the backend conformance suite.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TidemarkError, type WalFileManifest } from '@tidemark/contracts';
import {
  createFsBackend, createMemoryBackend, createS3Backend, parseWalKey, walFileKeys, walPrefix, WalArchive, type StorageBackend,
} from '@tidemark/storage';
import { startS3, type S3Endpoint } from '@tidemark/testkit';
import { readText } from './helpers.js';

const SYSID = '7301234567890123456';
const OTHER_SYSID = '7309999999999999999';
const SHA = 'c'.repeat(64);

function manifestFor(target: string, systemIdentifier: string, file: string, key: string, overrides: Partial<WalFileManifest> = {}): WalFileManifest {
  const fileKind = file.endsWith('.partial') ? 'partial' : file.endsWith('.history') ? 'history' : 'segment';
  return {
    manifestVersion: 1,
    engine: 'pg',
    target,
    systemIdentifier,
    file,
    fileKind,
    timeline: parseInt(file.slice(0, 8), 16),
    archivedAt: '2025-03-04T05:06:07.000Z',
    agent: { id: 'pg-agent-1', version: '0.1.0' },
    pipeline: { compression: 'none', encryption: null },
    data: { key, storedBytes: 5, rawBytes: 5, sha256: SHA },
    ...overrides,
  };
}

async function keysOf(backend: StorageBackend, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of backend.list(prefix)) keys.push(object.key);
  return keys.sort();
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<TidemarkError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(TidemarkError);
  expect((error as TidemarkError).code).toBe(code);
  return error as TidemarkError;
}

describe('wal archive keys', () => {
  it('lays files out under wal/pg/<target>/<sysid>/<file>/ and parses them back', () => {
    const keys = walFileKeys('main', SYSID, '000000010000000000000003');
    expect(keys.prefix).toBe(`wal/pg/main/${SYSID}/000000010000000000000003/`);
    expect(keys.manifest).toBe(`wal/pg/main/${SYSID}/000000010000000000000003/manifest.json`);
    expect(keys.data('abc123')).toBe(`wal/pg/main/${SYSID}/000000010000000000000003/data-abc123.bin`);
    expect(parseWalKey(keys.manifest)).toEqual({ target: 'main', systemIdentifier: SYSID, file: '000000010000000000000003', name: 'manifest.json' });
    expect(parseWalKey(walFileKeys('main', SYSID, '00000002.history').data('x'))).toMatchObject({ file: '00000002.history', name: 'data-x.bin' });
    expect(parseWalKey(`wal/pg/main/${SYSID}/000000010000000000000003.partial/manifest.json`)).toMatchObject({ file: '000000010000000000000003.partial' });
    for (const bad of ['artifacts/pg/main/x/manifest.json', `wal/pg/main/${SYSID}/nonsense/manifest.json`, `wal/pg/main/notanumber/000000010000000000000003/manifest.json`, `wal/pg/main/${SYSID}/000000010000000000000003`]) {
      expect(parseWalKey(bad), bad).toBeUndefined();
    }
    expect(walPrefix('main')).toBe('wal/pg/main/');
    expect(walPrefix('main', SYSID)).toBe(`wal/pg/main/${SYSID}/`);
  });

  it('refuses names that are not WAL files, odd targets and odd system identifiers', () => {
    for (const file of ['00000001000000000000000g', '../x', '000000010000000000000003.backup', 'x.history', '000000010000000000000003/..']) {
      expect(() => walFileKeys('main', SYSID, file), file).toThrow(TidemarkError);
    }
    expect(() => walPrefix('../etc')).toThrow(TidemarkError);
    expect(() => walPrefix('main', '12ab')).toThrow(TidemarkError);
    expect(() => walFileKeys('main', SYSID, '000000010000000000000003').data('../x')).toThrow(TidemarkError);
  });
});

type Factory = () => Promise<StorageBackend>;

function describeWalArchive(name: string, factory: Factory): void {
  describe(`wal archive on ${name}`, () => {
    let open: StorageBackend[] = [];
    const fresh = async (): Promise<{ backend: StorageBackend; archive: WalArchive }> => {
      const backend = await factory();
      open.push(backend);
      return { backend, archive: new WalArchive(backend) };
    };
    afterEach(async () => {
      await Promise.all(open.map((backend) => backend.close()));
      open = [];
    });

    /** saveData + commit of `body` as `file`. */
    const store = async (archive: WalArchive, file: string, body: string, target = 'main', systemIdentifier = SYSID, overrides: Partial<WalFileManifest> = {}) => {
      const saved = await archive.saveData(target, systemIdentifier, file, Readable.from([Buffer.from(body)]));
      const manifest = manifestFor(target, systemIdentifier, file, saved.key, { data: { key: saved.key, storedBytes: saved.storedBytes, rawBytes: saved.storedBytes, sha256: SHA }, ...overrides });
      await archive.commit(manifest);
      return { saved, manifest };
    };

    it('commits a file with its manifest and reads both back', async () => {
      const { archive } = await fresh();
      const { saved, manifest } = await store(archive, '000000010000000000000003', 'segment three');
      expect(saved.storedBytes).toBe(13);
      expect(saved.key).toMatch(new RegExp(`^wal/pg/main/${SYSID}/000000010000000000000003/data-[0-9a-f]{12}\\.bin$`));
      expect(await archive.readManifest('main', SYSID, '000000010000000000000003')).toEqual(manifest);
      expect(await readText(await archive.openData(manifest))).toBe('segment three');
    });

    it('a missing file has no manifest; uncommitted data is not listed', async () => {
      const { archive } = await fresh();
      expect(await archive.readManifest('main', SYSID, '000000010000000000000009')).toBeUndefined();
      await archive.saveData('main', SYSID, '000000010000000000000004', Readable.from([Buffer.from('orphan')]));
      expect(await archive.list('main')).toEqual([]);
    });

    it('lists committed files in WAL order: a history file between its parent and its own timeline', async () => {
      const { archive } = await fresh();
      const files = ['000000020000000000000005', '000000010000000000000004', '00000002.history', '000000010000000000000005.partial', '000000010000000000000003', '000000020000000000000005.partial'];
      for (const file of files) await store(archive, file, file);
      const listed = await archive.list('main', SYSID);
      expect(listed.map((f) => f.file)).toEqual([
        '000000010000000000000003',
        '000000010000000000000004',
        '000000010000000000000005.partial',
        '00000002.history',
        '000000020000000000000005',
        '000000020000000000000005.partial',
      ]);
      expect(listed.every((f) => f.systemIdentifier === SYSID && f.modifiedAt instanceof Date)).toBe(true);
    });

    it('keeps clusters and targets apart', async () => {
      const { archive } = await fresh();
      await store(archive, '000000010000000000000001', 'a');
      await store(archive, '000000010000000000000001', 'b', 'main', OTHER_SYSID);
      await store(archive, '000000010000000000000002', 'c', 'main2');
      expect((await archive.list('main')).map((f) => `${f.systemIdentifier}/${f.file}`)).toEqual([`${SYSID}/000000010000000000000001`, `${OTHER_SYSID}/000000010000000000000001`]);
      expect((await archive.list('main', OTHER_SYSID)).map((f) => f.file)).toEqual(['000000010000000000000001']);
      expect((await archive.list('main2')).map((f) => f.file)).toEqual(['000000010000000000000002']);
    });

    it('a partial uploaded again replaces the previous upload: one manifest, one data object', async () => {
      const { backend, archive } = await fresh();
      const file = '000000010000000000000007.partial';
      const first = await store(archive, file, 'short', 'main', SYSID, { endLsn: '0/7000100' });
      const second = await store(archive, file, 'longer now', 'main', SYSID, { endLsn: '0/7000200' });
      expect(second.saved.key).not.toBe(first.saved.key);
      expect(await keysOf(backend, walFileKeys('main', SYSID, file).prefix)).toEqual([second.saved.key, walFileKeys('main', SYSID, file).manifest].sort());
      const manifest = await archive.readManifest('main', SYSID, file);
      expect(manifest?.endLsn).toBe('0/7000200');
      expect(await readText(await archive.openData(manifest as WalFileManifest))).toBe('longer now');
    });

    it('commit cleans up the data of an earlier attempt that never committed', async () => {
      const { backend, archive } = await fresh();
      const file = '000000010000000000000008';
      await archive.saveData('main', SYSID, file, Readable.from([Buffer.from('killed midway')]));
      const { saved } = await store(archive, file, 'the real one');
      expect(await keysOf(backend, walFileKeys('main', SYSID, file).prefix)).toEqual([saved.key, walFileKeys('main', SYSID, file).manifest].sort());
    });

    it('refuses a manifest that is invalid or points outside its file', async () => {
      const { archive } = await fresh();
      const { saved } = await store(archive, '000000010000000000000001', 'one');
      await expectCode(archive.commit(manifestFor('main', SYSID, '000000010000000000000002', saved.key)), 'INTEGRITY_FORMAT');
      await expectCode(archive.commit({ ...manifestFor('main', SYSID, '000000010000000000000001', saved.key), data: { key: saved.key, storedBytes: -1, rawBytes: 1, sha256: 'x' } }), 'INTEGRITY_FORMAT');
      // The kind must match the name: restore_command trusts it.
      await expectCode(archive.commit({ ...manifestFor('main', SYSID, '000000010000000000000001', saved.key), fileKind: 'partial' }), 'INTEGRITY_FORMAT');
      await expectCode(archive.commit({ ...manifestFor('main', SYSID, '00000002.history', saved.key.replace('000000010000000000000001', '00000002.history')), timeline: 3 }), 'INTEGRITY_FORMAT');
      expect((await archive.readManifest('main', SYSID, '000000010000000000000001'))?.file).toBe('000000010000000000000001');
    });

    it('an unreadable manifest is INTEGRITY_FORMAT, not "missing"', async () => {
      const { backend, archive } = await fresh();
      await backend.save(walFileKeys('main', SYSID, '000000010000000000000001').manifest, Buffer.from('{ not json'));
      const error = await expectCode(archive.readManifest('main', SYSID, '000000010000000000000001'), 'INTEGRITY_FORMAT');
      expect(error.message).toContain('manifest.json');
    });

    it('remove takes the manifest and every data object; removing again is fine', async () => {
      const { backend, archive } = await fresh();
      await store(archive, '000000010000000000000001', 'one');
      await store(archive, '000000010000000000000002', 'two');
      await archive.saveData('main', SYSID, '000000010000000000000001', Readable.from([Buffer.from('leftover')]));
      await archive.remove('main', SYSID, '000000010000000000000001');
      await archive.remove('main', SYSID, '000000010000000000000001');
      await archive.remove('main', SYSID, '000000010000000000000005.partial'); // never existed
      expect(await keysOf(backend, walFileKeys('main', SYSID, '000000010000000000000001').prefix)).toEqual([]);
      expect((await archive.list('main')).map((f) => f.file)).toEqual(['000000010000000000000002']);
    });
  });
}

const roots: string[] = [];
let s3: S3Endpoint;
let buckets = 0;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

describeWalArchive('memory', async () => createMemoryBackend());
describeWalArchive('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'tidemark-wal-archive-'));
  roots.push(root);
  return createFsBackend({ root });
});
describeWalArchive('s3', async () =>
  createS3Backend({ endPoint: s3.endpoint, useSSL: false, accessKey: s3.accessKey, secretKey: s3.secretKey, region: s3.region, bucket: `wal-archive-${++buckets}`, prefix: 'tidemark' }),
);
