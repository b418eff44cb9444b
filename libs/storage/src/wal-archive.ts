// The continuous WAL archive of pg targets, beside the artifacts:
//
//   wal/pg/<target>/<systemIdentifier>/<file>/manifest.json       written last: commits the file
//   wal/pg/<target>/<systemIdentifier>/<file>/data-<token>.bin    the stored (encoded) bytes
//
// <file> is PostgreSQL's name (000000010000000000000003, 00000002.history) or, for uploads of
// the open segment, <segment>.partial. A partial is re-uploaded as it grows: a new data object,
// then the manifest is replaced, then the old data object removed, so a reader always finds a
// committed whole. The system identifier keeps the WAL of a re-initialised cluster (whose
// segment names start over) apart from the old one's. Everything here can be listed and read
// back without any other state: the bucket is the truth.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { TidemarkError, WalFileManifest } from '@tidemark/contracts';
import type { StorageBackend } from './backend.js';
import { MANIFEST_FILE } from './keys.js';
import { readDocument, validate } from './documents.js';

export const WAL_ROOT = 'wal/';

const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const WAL_FILE = /^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history$/;

function check(what: string, value: string, pattern: RegExp = SAFE_SEGMENT): void {
  if (!pattern.test(value) || value.includes('..')) {
    throw new TidemarkError('INTERNAL', `invalid ${what} ${JSON.stringify(value)} for a WAL archive key`);
  }
}

/** The prefix of one target's archive, or of one cluster (system identifier) inside it. */
export function walPrefix(target: string, systemIdentifier?: string): string {
  check('target', target);
  if (systemIdentifier === undefined) return `${WAL_ROOT}pg/${target}/`;
  check('system identifier', systemIdentifier, /^\d+$/);
  return `${WAL_ROOT}pg/${target}/${systemIdentifier}/`;
}

export function walFileKeys(target: string, systemIdentifier: string, file: string): {
  readonly prefix: string;
  readonly manifest: string;
  data(token: string): string;
} {
  check('WAL file name', file, WAL_FILE);
  const prefix = `${walPrefix(target, systemIdentifier)}${file}/`;
  return {
    prefix,
    manifest: `${prefix}${MANIFEST_FILE}`,
    data: (token: string) => {
      check('attempt token', token);
      return `${prefix}data-${token}.bin`;
    },
  };
}

export interface WalKeyParts {
  readonly target: string;
  readonly systemIdentifier: string;
  readonly file: string;
  /** "manifest.json" or "data-<token>.bin". */
  readonly name: string;
}

export function parseWalKey(key: string): WalKeyParts | undefined {
  if (!key.startsWith(`${WAL_ROOT}pg/`)) return undefined;
  const parts = key.slice(WAL_ROOT.length + 3).split('/');
  if (parts.length !== 4) return undefined;
  const [target, systemIdentifier, file, name] = parts as [string, string, string, string];
  if (!SAFE_SEGMENT.test(target) || !/^\d+$/.test(systemIdentifier) || !WAL_FILE.test(file) || !name) return undefined;
  return { target, systemIdentifier, file, name };
}

/** One committed file of the archive as a listing sees it (no manifest read). */
export interface ListedWalFile {
  readonly systemIdentifier: string;
  readonly file: string;
  readonly modifiedAt: Date;
}

/** WAL-file operations over a backend. The per-file manifest is the commit point. */
export class WalArchive {
  constructor(readonly backend: StorageBackend) {}

  /** Saves one file's encoded bytes under a fresh data key; commit with `commit` afterwards. */
  async saveData(target: string, systemIdentifier: string, file: string, body: Readable): Promise<{ key: string; storedBytes: number }> {
    const key = walFileKeys(target, systemIdentifier, file).data(randomBytes(6).toString('hex'));
    const storedBytes = await this.backend.save(key, body, { contentType: 'application/octet-stream' });
    return { key, storedBytes };
  }

  /**
   * Writes the file's manifest (commits it), then removes data objects of earlier uploads of the
   * same file (a partial's previous version, or a killed attempt's leftovers).
   */
  async commit(manifest: WalFileManifest): Promise<void> {
    const valid = validate(WalFileManifest, manifest, `WAL manifest of ${manifest.file}`);
    const keys = walFileKeys(valid.target, valid.systemIdentifier, valid.file);
    // Readers (restore_command, the gap detector) trust the kind and timeline: they must agree with the name.
    const kindOfName = valid.file.endsWith('.partial') ? 'partial' : valid.file.endsWith('.history') ? 'history' : 'segment';
    if (valid.fileKind !== kindOfName || valid.timeline !== parseInt(valid.file.slice(0, 8), 16)) {
      throw new TidemarkError('INTEGRITY_FORMAT', `WAL manifest of ${valid.file} says ${valid.fileKind} on timeline ${valid.timeline}, which its name contradicts; fix the producer`);
    }
    if (!valid.data.key.startsWith(keys.prefix)) {
      throw new TidemarkError('INTEGRITY_FORMAT', `WAL manifest of ${valid.file} points at ${valid.data.key}, outside ${keys.prefix}`);
    }
    await this.backend.save(keys.manifest, Buffer.from(`${JSON.stringify(valid, null, 2)}\n`), { contentType: 'application/json' });
    for await (const object of this.backend.list(keys.prefix)) {
      if (object.key !== keys.manifest && object.key !== valid.data.key) await this.backend.remove(object.key);
    }
  }

  /** The committed manifest of one file, or undefined. An unreadable manifest is INTEGRITY_FORMAT. */
  async readManifest(target: string, systemIdentifier: string, file: string): Promise<WalFileManifest | undefined> {
    return readDocument(this.backend, WalFileManifest, walFileKeys(target, systemIdentifier, file).manifest);
  }

  openData(manifest: WalFileManifest): Promise<Readable> {
    return this.backend.open(manifest.data.key);
  }

  /**
   * The committed files of a target (optionally one cluster), sorted by system identifier, then
   * name (which is WAL order within a timeline). Data objects without a manifest are not listed.
   */
  async list(target: string, systemIdentifier?: string): Promise<ListedWalFile[]> {
    const files: ListedWalFile[] = [];
    for await (const object of this.backend.list(walPrefix(target, systemIdentifier))) {
      const parts = parseWalKey(object.key);
      if (parts?.name !== MANIFEST_FILE) continue;
      files.push({ systemIdentifier: parts.systemIdentifier, file: parts.file, modifiedAt: object.modifiedAt });
    }
    return files.sort((a, b) => (a.systemIdentifier === b.systemIdentifier ? compare(a.file, b.file) : compare(a.systemIdentifier, b.systemIdentifier)));
  }

  /** Removes one file: manifest first (it is gone for readers at once), then its data. */
  async remove(target: string, systemIdentifier: string, file: string): Promise<void> {
    const keys = walFileKeys(target, systemIdentifier, file);
    await this.backend.remove(keys.manifest);
    const rest: string[] = [];
    for await (const object of this.backend.list(keys.prefix)) rest.push(object.key);
    for (const key of rest) await this.backend.remove(key);
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
