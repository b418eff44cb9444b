import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blockedDirectoriesAbove, maySearch, pgSocketPath, requireReachable, socketPathFits } from '../src/reachable.js';

const user = { uid: 1001, gid: 2001 };
const other = { uid: 3003, gid: 4004 };

describe('maySearch: the first class that matches decides, its bits are never OR-ed with another class', () => {
  it.each([
    // owner
    ['owner with x', { uid: user.uid, gid: other.gid, mode: 0o700 }, true],
    ['owner without x, others with x', { uid: user.uid, gid: other.gid, mode: 0o601 }, false],
    ['owner without x, group and others with x', { uid: user.uid, gid: user.gid, mode: 0o611 }, false],
    ['owner with x only', { uid: user.uid, gid: other.gid, mode: 0o100 }, true],
    // group
    ['group with x', { uid: other.uid, gid: user.gid, mode: 0o750 }, true],
    ['group without x, others with x', { uid: other.uid, gid: user.gid, mode: 0o741 }, false],
    ['group with x only', { uid: other.uid, gid: user.gid, mode: 0o010 }, true],
    ['group without x, owner class has x', { uid: other.uid, gid: user.gid, mode: 0o700 }, false],
    // others
    ['others with x', { uid: other.uid, gid: other.gid, mode: 0o711 }, true],
    ['others without x', { uid: other.uid, gid: other.gid, mode: 0o770 }, false],
    ['others with x only', { uid: other.uid, gid: other.gid, mode: 0o001 }, true],
    ['others: read without x is no search', { uid: other.uid, gid: other.gid, mode: 0o774 }, false],
    // file type and special bits do not count
    ['directory type bits with owner x', { uid: user.uid, gid: other.gid, mode: 0o040700 }, true],
    ['sticky bit with others x', { uid: other.uid, gid: other.gid, mode: 0o1777 }, true],
  ])('%s', (_name, directory, expected) => {
    expect(maySearch(directory, user)).toBe(expected);
  });
});

describe('blockedDirectoriesAbove and requireReachable', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root !== undefined) {
      await chmod(root, 0o700).catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    }
  });

  const me = { uid: process.getuid!(), gid: process.getgid!() };

  it('names the existing directories above the path that the user may not search, and skips missing ones', async () => {
    root = await mkdtemp(join(tmpdir(), 'tidemark-reach-'));
    const closed = join(root, 'closed');
    await mkdir(join(closed, 'open'), { recursive: true });
    await chmod(closed, 0o600);
    const blocked = await blockedDirectoriesAbove(join(closed, 'open', 'missing', 'data'), me);
    expect(blocked).toEqual([{ path: closed, mode: 0o600 }]);
    await expect(requireReachable(join(closed, 'open', 'data'), me, { what: 'the data directory', osUser: 'postgres', otherwise: 'choose another' }))
      .rejects.toMatchObject({ code: 'CONFIG_INVALID', retryable: false, message: expect.stringContaining(`${closed} (mode 600)`) as string });
    await chmod(closed, 0o700);
    await expect(blockedDirectoriesAbove(join(closed, 'open', 'data'), me)).resolves.toEqual([]);
  });

  it('checks nothing when the server runs as this process (not root)', async () => {
    await expect(requireReachable('/nonexistent/x', undefined, { what: 'x', osUser: 'postgres', otherwise: 'y' })).resolves.toBeUndefined();
  });
});

describe('socket paths', () => {
  it('fits 107 bytes and no more (sun_path with its NUL)', () => {
    expect(socketPathFits(`/${'a'.repeat(106)}`)).toBe(true);
    expect(socketPathFits(`/${'a'.repeat(107)}`)).toBe(false);
    // bytes, not characters
    expect(socketPathFits(`/${'é'.repeat(54)}`)).toBe(false);
  });

  it('names PostgreSQL\'s socket for the longest port by default', () => {
    expect(pgSocketPath('/run/pg')).toBe('/run/pg/.s.PGSQL.65535');
    expect(pgSocketPath('/run/pg', 5432)).toBe('/run/pg/.s.PGSQL.5432');
  });
});
