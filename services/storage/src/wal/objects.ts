// The WAL archive's objects grouped per file, with sizes: what retention needs to report bytes
// and the orphan sweep needs to find data objects no manifest claims. WalArchive.list only
// lists committed files; this sees everything under the prefix.
import { MANIFEST_FILE, WAL_ROOT, parseWalKey, walPrefix, type ObjectInfo, type StorageBackend } from '@tidemark/storage';

export interface WalFileObjects {
  readonly target: string;
  readonly systemIdentifier: string;
  readonly file: string;
  /** The manifest object; undefined when the file is not committed. */
  manifest: ObjectInfo | undefined;
  readonly data: ObjectInfo[];
}

/** Every WAL file's objects under a target's prefix (or the whole WAL root), keyed "<target>/<sysid>/<file>". */
export async function listWalObjects(backend: Pick<StorageBackend, 'list'>, target?: string): Promise<Map<string, WalFileObjects>> {
  const files = new Map<string, WalFileObjects>();
  for await (const object of backend.list(target === undefined ? WAL_ROOT : walPrefix(target))) {
    const parts = parseWalKey(object.key);
    if (!parts) continue; // not ours to judge (and never removed by us)
    const key = `${parts.target}/${parts.systemIdentifier}/${parts.file}`;
    let entry = files.get(key);
    if (!entry) {
      entry = { target: parts.target, systemIdentifier: parts.systemIdentifier, file: parts.file, manifest: undefined, data: [] };
      files.set(key, entry);
    }
    if (parts.name === MANIFEST_FILE) entry.manifest = object;
    else if (/^data-[A-Za-z0-9_.-]+\.bin$/.test(parts.name)) entry.data.push(object);
  }
  return files;
}

export const bytesOf = (file: WalFileObjects): number => (file.manifest?.size ?? 0) + file.data.reduce((sum, o) => sum + o.size, 0);
