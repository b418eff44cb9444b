// How an extracted base backup is configured before it starts in recovery, without starting it:
// a restore keeps the source's settings and authentication and changes only what a restore must;
// the verifier's sandbox gets a minimal config only its owner can log into.
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AGENT_ACCESS_LINE, FALLBACK_HBA, prepareRecoveryDirectory } from '../src/index.js';

const SOURCE_CONF = "port = 5999\ndata_directory = '/var/lib/postgresql/15/main'\nhba_file = '/etc/postgresql/15/main/pg_hba.conf'\nshared_buffers = 64MB\n";
const SOURCE_HBA = 'local all postgres peer\nhost all all 10.0.0.0/8 scram-sha-256\n';

describe('prepareRecoveryDirectory', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'tidemark-recovery-dir-'));
    dir = join(root, 'data');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, 'PG_VERSION'), '15\n');
    await writeFile(join(dir, 'postgresql.conf'), SOURCE_CONF);
    await writeFile(join(dir, 'postgresql.auto.conf'), "listen_addresses = '*'\n");
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const prepare = (keepSource: boolean, port = 6001) =>
    prepareRecoveryDirectory(dir, port, {
      listenAddress: '127.0.0.1',
      restoreCommand: 'fetch %f %p',
      recoveryTarget: ["recovery_target = 'immediate'"],
      ...(keepSource ? { keepSource: { socketDirectory: `${dir}.socket` } } : {}),
    });

  it("keeps the source's settings and pg_hba.conf, and overrides only what a restore must: paths, port, listening, archiving, restore_command", async () => {
    await writeFile(join(dir, 'pg_hba.conf'), SOURCE_HBA);
    await prepare(true);
    await prepare(true, 6002); // a retry on another port
    const conf = await readFile(join(dir, 'postgresql.conf'), 'utf8');
    const lines = conf.split('\n');
    // The source's files come first, so every line after them wins.
    expect(lines.indexOf("include_if_exists 'postgresql.conf.source'")).toBe(1);
    expect(lines.indexOf("include_if_exists 'postgresql.auto.conf.source'")).toBe(2);
    expect(await readFile(join(dir, 'postgresql.conf.source'), 'utf8')).toBe(SOURCE_CONF);
    expect(lines).toEqual(expect.arrayContaining([
      `data_directory = '${dir}'`, `hba_file = '${dir}/pg_hba.conf'`, `ident_file = '${dir}/pg_ident.conf'`, "external_pid_file = ''",
      "listen_addresses = '127.0.0.1'", 'port = 6002', `unix_socket_directories = '${dir}.socket'`, 'archive_mode = off', "restore_command = 'fetch %f %p'",
    ]));
    expect(conf).not.toMatch(/unix_socket_permissions/);
    expect(await readFile(join(dir, 'postgresql.auto.conf'), 'utf8')).toBe('');
    // The source's rules, with the agent's line on top exactly once.
    expect(await readFile(join(dir, 'pg_hba.conf'), 'utf8')).toBe(`${AGENT_ACCESS_LINE}\n${SOURCE_HBA}`);
    expect(existsSync(join(dir, 'pg_hba.conf.source'))).toBe(false);
    expect((await stat(`${dir}.socket`)).mode & 0o777).toBe(0o700);
  });

  it('gives a backup without pg_hba.conf (Debian keeps it in /etc) password authentication, never trust', async () => {
    await prepare(true);
    const hba = await readFile(join(dir, 'pg_hba.conf'), 'utf8');
    expect(hba).toBe(`${AGENT_ACCESS_LINE}\n${FALLBACK_HBA}`);
    expect(FALLBACK_HBA.split('\n').filter((line) => /trust/.test(line))).toEqual([]);
  });

  it("as the verifier's sandbox: a minimal config, the source's set aside, the socket in the 0700 data directory", async () => {
    await writeFile(join(dir, 'pg_hba.conf'), SOURCE_HBA);
    await prepare(false);
    const conf = await readFile(join(dir, 'postgresql.conf'), 'utf8');
    expect(conf).not.toContain('include');
    expect(conf).toContain(`unix_socket_directories = '${dir}'`);
    expect(await readFile(join(dir, 'pg_hba.conf.source'), 'utf8')).toBe(SOURCE_HBA);
    expect(await readFile(join(dir, 'pg_hba.conf'), 'utf8')).toMatch(/^local all all trust\n/);
    expect(existsSync(`${dir}.socket`)).toBe(false);
  });
});
