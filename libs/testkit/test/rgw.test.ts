import { existsSync } from 'node:fs';
import { chmod, symlink, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from 'minio';
import { describe, expect, it } from 'vitest';
import { socketPathFits } from '@tidemark/pg';
import { freePort, makeTempDir, processesMentioning, removeTempDir, startRgw } from '../src/index.js';

describe('startRgw', () => {
  it('without the Ceph packages fails loudly, naming the missing packages and how to install them', async () => {
    const empty = await makeTempDir('no-ceph');
    try {
      const error = await startRgw({ binDir: empty }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      for (const debianPackage of ['package ceph-mon', 'package ceph-osd', 'package radosgw', 'package ceph-common']) expect(message).toContain(debianPackage);
      expect(message).toContain('apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw');
    } finally {
      await removeTempDir(empty);
    }
  });

  it('a daemon that fails puts its output and the cluster logs in the error, and leaves nothing running', async () => {
    // The real binaries, except an OSD that cannot create its store.
    const binDir = await makeTempDir('broken-ceph');
    try {
      for (const binary of ['ceph-mon', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph']) await symlink(`/usr/bin/${binary}`, join(binDir, binary));
      await writeFile(join(binDir, 'ceph-osd'), '#!/bin/sh\necho "no room for the object store" >&2\nexit 3\n');
      await chmod(join(binDir, 'ceph-osd'), 0o755);
      const error = await startRgw({ binDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toContain('ceph-osd exited with code 3');
      expect(message).toContain('no room for the object store');
      expect(message).toContain('--- mon.a.log');
      expect(await processesMentioning(binDir)).toEqual([]);
    } finally {
      await removeTempDir(binDir);
    }
  });

  it('a gateway that never answers fails the start within the step timeout, with the logs, and leaves nothing running', async () => {
    const binDir = await makeTempDir('hung-ceph');
    try {
      for (const binary of ['ceph-mon', 'ceph-osd', 'radosgw-admin', 'monmaptool', 'ceph']) await symlink(`/usr/bin/${binary}`, join(binDir, binary));
      // Runs, but never listens: as a gateway hung before it serves.
      await writeFile(join(binDir, 'radosgw'), `#!${process.execPath}\nsetInterval(() => undefined, 1000);\n`);
      await chmod(join(binDir, 'radosgw'), 0o755);
      const started = Date.now();
      const error = await startRgw({ binDir, stepTimeoutMs: 3_000 }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toContain('timed out after 3000 ms waiting until the gateway answers HTTP');
      expect(message).toContain('--- osd.0.log');
      expect(await processesMentioning(binDir)).toEqual([]);
    } finally {
      await removeTempDir(binDir);
    }
  });

  // The first port picked is the monitor's, the second the gateway's.
  it.each([
    ['monitor', 0],
    ['gateway', 1],
  ])('a %s port taken between picking and binding is picked again', async (_daemon, takenPick) => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const taken = (holder.address() as AddressInfo).port;
    let picks = 0;
    const pickPort = async (): Promise<number> => (picks++ === takenPick ? taken : freePort());
    try {
      const rgw = await startRgw({ pickPort });
      expect(picks).toBe(4);
      expect(rgw.port).not.toBe(taken);
      await rgw.stop();
    } finally {
      holder.close();
    }
  });

  it('starts a gateway that answers signed requests, and stop() leaves no daemon and no directory', async () => {
    const rgw = await startRgw();
    console.log(`Ceph RGW started in ${rgw.startupMs} ms`);
    try {
      expect(rgw.endpoint).toBe(`http://127.0.0.1:${rgw.port}`);
      // Admin sockets are unix sockets, whose paths have a length limit.
      expect(socketPathFits(`${rgw.directory}/run/client.rgw.tidemark.asok`)).toBe(true);
      const client = new Client({ endPoint: '127.0.0.1', port: rgw.port, useSSL: false, accessKey: rgw.accessKey, secretKey: rgw.secretKey, region: rgw.region, pathStyle: true });
      expect(await client.listBuckets()).toEqual([]);
      const stranger = new Client({ endPoint: '127.0.0.1', port: rgw.port, useSSL: false, accessKey: 'NOBODY', secretKey: 'wrong', region: rgw.region, pathStyle: true });
      await expect(stranger.listBuckets()).rejects.toMatchObject({ code: 'InvalidAccessKeyId' });
      expect((await processesMentioning(rgw.directory)).length).toBe(3);
    } finally {
      await rgw.stop();
    }
    expect(await processesMentioning(rgw.directory)).toEqual([]);
    expect(existsSync(rgw.directory)).toBe(false);
  });
});
