import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { keyIdOf, keyRingFromConfig, loadKeyRing } from '@tidemark/pipeline';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const keyFile = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe('keyIdOf', () => {
  it('is "sha256:" and the first 16 hex of the key digest', () => {
    expect(keyIdOf(Buffer.alloc(32))).toBe('sha256:66687aadf862bd77');
  });
});

describe('loadKeyRing', () => {
  const key = randomBytes(32);

  it('has no current key when nothing is configured, even when the key is already named', () => {
    expect(loadKeyRing({}).current).toBeUndefined();
    expect(loadKeyRing({ TIDEMARK_ENCRYPTION_KEY_ID: 'prod' }).current).toBeUndefined();
  });

  it('reads a hex key and names it by fingerprint', () => {
    const ring = loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: key.toString('hex') });
    expect(ring.current?.key.equals(key)).toBe(true);
    expect(ring.current?.id).toBe(keyIdOf(key));
    expect(ring.get(keyIdOf(key))?.key.equals(key)).toBe(true);
  });

  it('reads a base64 key from a file, whitespace trimmed, under an operator name', () => {
    const ring = loadKeyRing({
      TIDEMARK_ENCRYPTION_KEY_FILE: keyFile('current.key', `  ${key.toString('base64')}\n`),
      TIDEMARK_ENCRYPTION_KEY_ID: 'prod-2025',
    });
    expect(ring.current?.id).toBe('prod-2025');
    expect(ring.get('prod-2025')?.key.equals(key)).toBe(true);
    // The fingerprint still resolves, for manifests written before the key had a name.
    expect(ring.get(keyIdOf(key))?.key.equals(key)).toBe(true);
  });

  it('keeps old keys readable, by fingerprint or by the name given as name=path', () => {
    const old = randomBytes(32);
    const older = randomBytes(32);
    const ring = loadKeyRing({
      TIDEMARK_ENCRYPTION_KEY: key.toString('hex'),
      TIDEMARK_ENCRYPTION_OLD_KEY_FILES: `${keyFile('old.key', old.toString('hex'))}, prod-2023=${keyFile('older.key', older.toString('hex'))}`,
    });
    expect(ring.current?.key.equals(key)).toBe(true);
    expect(ring.get(keyIdOf(old))?.key.equals(old)).toBe(true);
    expect(ring.get('prod-2023')?.key.equals(older)).toBe(true);
    expect(ring.get('unknown')).toBeUndefined();
  });

  it('rejects a key of the wrong length, naming the variable and not the value', () => {
    const short = randomBytes(16).toString('hex');
    try {
      loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: short });
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
      expect((error as Error).message).toContain('TIDEMARK_ENCRYPTION_KEY');
      expect((error as Error).message).not.toContain(short);
    }
  });

  it('rejects both a key and a key file, a missing file, and a malformed name', () => {
    expect(() => loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: key.toString('hex'), TIDEMARK_ENCRYPTION_KEY_FILE: '/x' })).toThrow(/set only one/);
    expect(() => loadKeyRing({ TIDEMARK_ENCRYPTION_KEY_FILE: join(dir, 'absent.key') })).toThrow(/TIDEMARK_ENCRYPTION_KEY_FILE.*ENOENT/);
    expect(() => loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: key.toString('hex'), TIDEMARK_ENCRYPTION_KEY_ID: 'has space' })).toThrow(/TIDEMARK_ENCRYPTION_KEY_ID/);
  });
});

describe('keyRingFromConfig', () => {
  const key = randomBytes(32);
  const old = randomBytes(32);

  it('without an encryption section, reads the TIDEMARK_ENCRYPTION_* variables', () => {
    expect(keyRingFromConfig({}, { TIDEMARK_ENCRYPTION_KEY: key.toString('hex') }).current?.key.equals(key)).toBe(true);
  });

  it('reads the key from the variable the section names, under its key id, with its old key files', () => {
    const ring = keyRingFromConfig(
      { encryption: { keyEnv: 'APP_BACKUP_KEY', keyId: 'prod', oldKeyFiles: [keyFile('config-old.key', old.toString('hex'))] } },
      { APP_BACKUP_KEY: key.toString('hex'), TIDEMARK_ENCRYPTION_KEY: randomBytes(32).toString('hex') },
    );
    expect(ring.current).toMatchObject({ id: 'prod' });
    expect(ring.current?.key.equals(key)).toBe(true);
    expect(ring.get(keyIdOf(old))?.key.equals(old)).toBe(true);
  });

  it('prefers the key file over the variable', () => {
    const ring = keyRingFromConfig({ encryption: { keyEnv: 'APP_BACKUP_KEY', keyFile: keyFile('config.key', key.toString('base64')), oldKeyFiles: [] } }, { APP_BACKUP_KEY: old.toString('hex') });
    expect(ring.current?.key.equals(key)).toBe(true);
  });
});
