import { describe, expect, it } from 'vitest';
import { DEFAULT_NATS_URL, parseArgs } from '../src/args.js';
import { buildBackupRequest } from '../src/commands/backup.js';
import { buildRestoreRequest } from '../src/commands/restore.js';

const ok = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const result = parseArgs(argv, env);
  if (!result.ok) throw new Error(`expected success, got: ${result.error}`);
  return result;
};
const error = (argv: string[]) => {
  const result = parseArgs(argv);
  if (result.ok) throw new Error('expected a usage error');
  return result.error;
};

describe('parseArgs', () => {
  it('parses a backup with every option, options before or after the arguments', () => {
    const { globals, command } = ok(['--nats', 'nats://n:4222', 'backup', 'pg', 'main', '--kind', 'logical', '--reason=before migration', '--no-verify', '--wait', '--json', '--timeout', '90']);
    expect(globals).toEqual({ natsUrl: 'nats://n:4222', json: true, timeoutSeconds: 90 });
    expect(command).toEqual({ name: 'backup', engine: 'pg', target: 'main', kind: 'logical', reason: 'before migration', verify: false, wait: true });
  });

  it('leaves verify to the target unless --no-verify is given', () => {
    expect(ok(['backup', 'qdrant', 'vectors']).command).toEqual({ name: 'backup', engine: 'qdrant', target: 'vectors', wait: false });
  });

  it('takes the NATS url from TIDEMARK_NATS_URL, then the default', () => {
    expect(ok(['status'], { TIDEMARK_NATS_URL: 'nats://env:1' }).globals.natsUrl).toBe('nats://env:1');
    expect(ok(['status']).globals).toEqual({ natsUrl: DEFAULT_NATS_URL, json: false, timeoutSeconds: undefined });
  });

  it('parses restore', () => {
    expect(ok(['restore', 'pg', 'main', '--artifact', '20250101T000000Z-abc', '--into', 'main_copy', '--overwrite', '--wait']).command).toEqual({
      name: 'restore', engine: 'pg', target: 'main', artifactId: '20250101T000000Z-abc', intoDatabase: 'main_copy', overwrite: true, wait: true,
    });
  });

  it('names qdrant collections: --collection for backups and restores, --into as the collection to restore into', () => {
    const backup = ok(['backup', 'qdrant', 'vectors', '--kind', 'export', '--collection', 'docs,chunks']).command;
    expect(backup).toEqual({ name: 'backup', engine: 'qdrant', target: 'vectors', kind: 'export', collections: ['docs', 'chunks'], wait: false });
    expect(buildBackupRequest(backup as Parameters<typeof buildBackupRequest>[0], 'r1', 'me')).toMatchObject({ kind: 'export', collections: ['docs', 'chunks'] });
    const restore = ok(['restore', 'qdrant', 'vectors', '--collection', 'docs', '--into', 'docs_copy']).command;
    const request = buildRestoreRequest(restore as Parameters<typeof buildRestoreRequest>[0], 'r2', 'me');
    expect(request).toMatchObject({ collection: 'docs', intoCollection: 'docs_copy', overwrite: false });
    expect(request).not.toHaveProperty('intoDatabase');
    const pg = buildRestoreRequest(ok(['restore', 'pg', 'main', '--into', 'app_copy']).command as Parameters<typeof buildRestoreRequest>[0], 'r3', 'me');
    expect(pg).toMatchObject({ intoDatabase: 'app_copy' });
    expect(pg).not.toHaveProperty('intoCollection');
  });

  it('parses list with an optional scope and limit', () => {
    expect(ok(['list']).command).toEqual({ name: 'list' });
    expect(ok(['list', 'pg']).command).toEqual({ name: 'list', engine: 'pg' });
    expect(ok(['list', 'pg', 'main', '--limit', '5']).command).toEqual({ name: 'list', engine: 'pg', target: 'main', limit: 5 });
  });

  it('shows help for no command, help, --help and -h', () => {
    expect(ok([]).command).toEqual({ name: 'help' });
    expect(ok(['help']).command).toEqual({ name: 'help' });
    expect(ok(['help', 'backup']).command).toEqual({ name: 'help', topic: 'backup' });
    expect(ok(['backup', '--help']).command).toEqual({ name: 'help', topic: 'backup' });
    expect(ok(['-h']).command).toEqual({ name: 'help' });
  });

  it('explains usage errors', () => {
    expect(error(['backup', 'pg'])).toMatch(/missing arguments: tidemark backup <engine> <target>/);
    expect(error(['backup', 'oracle', 'main'])).toMatch(/unknown engine "oracle"/);
    expect(error(['backup', 'pg', 'Main'])).toMatch(/invalid target "Main"/);
    expect(error(['backup', 'pg', 'main', '--kind', 'full'])).toMatch(/unknown kind "full"/);
    expect(error(['backup', 'pg', 'main', '--into', 'x'])).toMatch(/unknown option --into for "backup"/);
    expect(error(['backup', 'pg', 'main', 'extra'])).toMatch(/unexpected argument "extra"/);
    expect(error(['frobnicate'])).toMatch(/unknown command "frobnicate"/);
    expect(error(['status', '--timeout'])).toMatch(/--timeout needs a value/);
    expect(error(['status', '--timeout', 'soon'])).toMatch(/--timeout needs a number/);
    expect(error(['list', '--limit', '1.5'])).toMatch(/whole number/);
    expect(error(['status', '--json=yes'])).toMatch(/takes no value/);
  });

  it('parses the files commands: backup --full-rehash, restore paths and destinations, ls', () => {
    const backup = ok(['backup', 'files', 'docs', '--full-rehash', '--wait']).command;
    expect(backup).toEqual({ name: 'backup', engine: 'files', target: 'docs', fullRehash: true, wait: true });
    expect(buildBackupRequest(backup as Parameters<typeof buildBackupRequest>[0], 'r1', 'me')).toMatchObject({ fullRehash: true });
    const restore = ok(['restore', 'files', 'docs', '--path', 'cases/2024', '--path', 'a b/c,d', '--into', '/srv/restore', '--snapshot', '20261207T120000Z-abc', '--overwrite']).command;
    expect(restore).toEqual({
      name: 'restore', engine: 'files', target: 'docs', paths: ['cases/2024', 'a b/c,d'], intoDirectory: '/srv/restore', artifactId: '20261207T120000Z-abc', overwrite: true, wait: false,
    });
    expect(buildRestoreRequest(restore as Parameters<typeof buildRestoreRequest>[0], 'r2', 'me')).toMatchObject({ paths: ['cases/2024', 'a b/c,d'], intoDirectory: '/srv/restore' });
    const s3 = ok(['restore', 'files', 'objects', '--into-bucket', 'restored', '--into-prefix', 'x/']).command;
    expect(buildRestoreRequest(s3 as Parameters<typeof buildRestoreRequest>[0], 'r3', 'me')).toMatchObject({ intoBucket: 'restored', intoPrefix: 'x/' });
    expect(ok(['ls', 'files', 'docs']).command).toEqual({ name: 'ls', engine: 'files', target: 'docs', recursive: false });
    expect(ok(['ls', 'files', 'docs', 'cases/2024', '--recursive']).command).toEqual({ name: 'ls', engine: 'files', target: 'docs', path: 'cases/2024', recursive: true });
    expect(ok(['ls', 'files', 'docs', '20261207T120000Z-abc', 'cases', '--limit', '50']).command).toEqual({
      name: 'ls', engine: 'files', target: 'docs', artifactId: '20261207T120000Z-abc', path: 'cases', recursive: false, limit: 50,
    });
  });

  it('explains misused files options', () => {
    expect(error(['backup', 'pg', 'main', '--full-rehash'])).toMatch(/--full-rehash is for files targets/);
    expect(error(['restore', 'pg', 'main', '--path', 'x'])).toMatch(/--path is for files targets/);
    expect(error(['restore', 'files', 'docs', '--into', 'relative/dir'])).toMatch(/--into "relative\/dir": give an absolute directory/);
    expect(error(['restore', 'files', 'docs', '--into', '/srv', '--into-bucket', 'b'])).toMatch(/exclude each other/);
    expect(error(['restore', 'files', 'docs', '--snapshot', 'a', '--artifact', 'b'])).toMatch(/give one/);
    expect(error(['ls', 'pg', 'main'])).toMatch(/for pg artifacts use "tidemark list pg"/);
    expect(error(['ls', 'files'])).toMatch(/missing arguments: tidemark ls files <target>/);
    expect(error(['ls', 'files', 'docs', 'a', 'b'])).toMatch(/unexpected argument "b"/);
  });
});
