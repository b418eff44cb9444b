// Encryption keys from the environment. Key bytes never appear in logs or error messages: errors
// name the variable or file that was wrong, never its content.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TidemarkError } from '@tidemark/contracts';

export interface EncryptionKey {
  /** Stable id recorded in manifests: a name given by the operator, or "sha256:<first 16 hex of sha256(key)>". */
  readonly id: string;
  /** 32 bytes. Never logged. */
  readonly key: Buffer;
}

export interface KeyRing {
  /** The key new artifacts are encrypted with, if encryption is configured. */
  readonly current: EncryptionKey | undefined;
  /** Looks a key up by the id a manifest names (old keys stay readable after rotation). */
  get(id: string): EncryptionKey | undefined;
}

export const KEY_BYTES = 32;
/** Key ids travel in every encrypted header and manifest: short, printable, no separators that need quoting. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Fingerprint id of a raw key: "sha256:<16 hex>". */
export function keyIdOf(key: Buffer): string {
  return `sha256:${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

/** A ring over explicit keys; the first is current. Handy for tests and tools. */
export function keyRingOf(current: EncryptionKey | undefined, older: readonly EncryptionKey[] = []): KeyRing {
  const byId = new Map<string, EncryptionKey>();
  for (const entry of [...older, ...(current === undefined ? [] : [current])]) {
    // A named key also answers to its fingerprint, so manifests written before it was named stay readable.
    byId.set(entry.id, entry);
    const fingerprint = keyIdOf(entry.key);
    if (!byId.has(fingerprint)) byId.set(fingerprint, { id: fingerprint, key: entry.key });
  }
  return { current, get: (id) => byId.get(id) };
}

/**
 * Loads keys from the environment:
 * - TIDEMARK_ENCRYPTION_KEY: 32 bytes as 64 hex chars or base64
 * - TIDEMARK_ENCRYPTION_KEY_FILE: a file holding the same (whitespace trimmed)
 * - TIDEMARK_ENCRYPTION_KEY_ID: optional name for the current key (ignored when no key is set, so a
 *   config can name its key before the key is provisioned)
 * - TIDEMARK_ENCRYPTION_OLD_KEY_FILES: optional comma-separated files of older keys (read-only);
 *   an entry may be written `name=path` to give the old key the name its manifests recorded
 * Throws TidemarkError CONFIG_INVALID with a message naming the variable (never the key).
 */
export function loadKeyRing(env: NodeJS.ProcessEnv): KeyRing {
  const inline = nonEmpty(env['TIDEMARK_ENCRYPTION_KEY']);
  const file = nonEmpty(env['TIDEMARK_ENCRYPTION_KEY_FILE']);
  const name = nonEmpty(env['TIDEMARK_ENCRYPTION_KEY_ID']);
  if (inline !== undefined && file !== undefined) {
    throw invalid('both TIDEMARK_ENCRYPTION_KEY and TIDEMARK_ENCRYPTION_KEY_FILE are set: set only one');
  }
  if (name !== undefined && !KEY_ID_PATTERN.test(name)) {
    throw invalid('TIDEMARK_ENCRYPTION_KEY_ID must be 1-128 characters of letters, digits, ".", "_", ":" or "-"');
  }

  let current: EncryptionKey | undefined;
  if (inline !== undefined) {
    const key = parseKey(inline, 'TIDEMARK_ENCRYPTION_KEY');
    current = { id: name ?? keyIdOf(key), key };
  } else if (file !== undefined) {
    const key = parseKey(readKeyFile(file, 'TIDEMARK_ENCRYPTION_KEY_FILE'), `TIDEMARK_ENCRYPTION_KEY_FILE (${file})`);
    current = { id: name ?? keyIdOf(key), key };
  }

  const older: EncryptionKey[] = [];
  for (const entry of (env['TIDEMARK_ENCRYPTION_OLD_KEY_FILES'] ?? '').split(',')) {
    const trimmed = entry.trim();
    if (trimmed === '') continue;
    const separator = trimmed.indexOf('=');
    const oldName = separator > 0 ? trimmed.slice(0, separator).trim() : undefined;
    const path = separator > 0 ? trimmed.slice(separator + 1).trim() : trimmed;
    if (oldName !== undefined && !KEY_ID_PATTERN.test(oldName)) {
      throw invalid(`TIDEMARK_ENCRYPTION_OLD_KEY_FILES names an old key "${oldName}" that is not a valid key id`);
    }
    const label = `TIDEMARK_ENCRYPTION_OLD_KEY_FILES (${path})`;
    const key = parseKey(readKeyFile(path, 'TIDEMARK_ENCRYPTION_OLD_KEY_FILES'), label);
    older.push({ id: oldName ?? keyIdOf(key), key });
  }
  return keyRingOf(current, older);
}

/**
 * tidemark.yaml's `encryption` section, as this package reads it (declared here, not imported:
 * the config package depends on storage, which depends on this one).
 */
export interface EncryptionSettings {
  readonly keyEnv: string;
  readonly keyFile?: string | undefined;
  readonly keyId?: string | undefined;
  readonly oldKeyFiles: readonly string[];
}

/**
 * The key ring named by the config's `encryption` section (the key in `keyEnv` or `keyFile`, older
 * keys in `oldKeyFiles`); without that section, the TIDEMARK_ENCRYPTION_* variables.
 */
export function keyRingFromConfig(config: { readonly encryption?: EncryptionSettings | undefined }, env: NodeJS.ProcessEnv = process.env): KeyRing {
  const section = config.encryption;
  if (!section) return loadKeyRing(env);
  const keyEnv: NodeJS.ProcessEnv = {};
  if (section.keyFile) keyEnv['TIDEMARK_ENCRYPTION_KEY_FILE'] = section.keyFile;
  else if (env[section.keyEnv] !== undefined) keyEnv['TIDEMARK_ENCRYPTION_KEY'] = env[section.keyEnv];
  if (section.keyId) keyEnv['TIDEMARK_ENCRYPTION_KEY_ID'] = section.keyId;
  if (section.oldKeyFiles.length > 0) keyEnv['TIDEMARK_ENCRYPTION_OLD_KEY_FILES'] = section.oldKeyFiles.join(',');
  return loadKeyRing(keyEnv);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function readKeyFile(path: string, variable: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw invalid(`${variable}: cannot read key file ${path} (${reason}): check the path and its permissions`);
  }
}

function parseKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const decoded = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
    if (decoded.length === KEY_BYTES) return decoded;
  }
  throw invalid(`${source} must hold a 32-byte key as 64 hex characters or base64 (generate one with: openssl rand -hex 32)`);
}

function invalid(message: string): TidemarkError {
  return new TidemarkError('CONFIG_INVALID', message);
}
