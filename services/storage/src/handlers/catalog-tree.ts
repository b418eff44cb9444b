// catalog.tree: the entries of a files snapshot under a path, read from its tree in the bucket.
import {
  CatalogTreeRequest, TidemarkError, parseMessage, toErrorInfo,
  type CatalogTreeEntry, type CatalogTreeReply, type Manifest,
} from '@tidemark/contracts';
import type { TreeEntry } from '@tidemark/files';
import type { Catalog } from '../catalog/catalog.js';
import type { TreeReader } from '../files/trees.js';
import type { ErrorReply } from './catalog-requests.js';

/** Entries per reply unless the request asks for fewer or more: well under NATS's 1 MiB payload limit. */
export const DEFAULT_TREE_LIMIT = 1000;

export interface CatalogTreeDeps {
  readonly catalog: Pick<Catalog, 'find' | 'select'>;
  readonly readTree: TreeReader;
}

/**
 * The snapshot (the given one, else the target's newest), then its entries under `path`: the
 * children of a directory (all descendants with `recursive`), or the entry itself when `path`
 * names anything else. The tree is in walk order, so a path's descendants follow it without a
 * gap: reading stops right after them.
 */
export async function listSnapshotTree(request: unknown, deps: CatalogTreeDeps): Promise<CatalogTreeReply | ErrorReply> {
  try {
    const parsed = parseMessage(CatalogTreeRequest, request);
    const manifest = await snapshotOf(parsed, deps.catalog);
    const path = normalisePath(parsed.path ?? '');
    const limit = parsed.limit ?? DEFAULT_TREE_LIMIT;
    const prefix = path === '' ? '' : `${path}/`;
    const entries: CatalogTreeEntry[] = [];
    let found = path === '';
    let inside = false;
    let truncated = false;
    for await (const entry of deps.readTree(manifest)) {
      if (path !== '' && entry.path === path) {
        found = true;
        inside = true;
        if (entry.type !== 'dir') {
          entries.push(toCatalogTreeEntry(entry));
          break;
        }
        continue;
      }
      if (!entry.path.startsWith(prefix)) {
        if (inside) break;
        continue;
      }
      found = true;
      inside = true;
      if (!parsed.recursive && entry.path.indexOf('/', prefix.length) !== -1) continue;
      if (entries.length === limit) {
        truncated = true;
        break;
      }
      entries.push(toCatalogTreeEntry(entry));
    }
    if (!found) {
      throw new TidemarkError('STORAGE_NOT_FOUND', `files snapshot ${manifest.id} of target "${manifest.target}" holds no path "${path}"; list its top level without a path`);
    }
    return { artifactId: manifest.id, entries, truncated };
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
}

async function snapshotOf(request: CatalogTreeRequest, catalog: CatalogTreeDeps['catalog']): Promise<Manifest> {
  if (request.artifactId !== undefined) {
    const record = await catalog.find(request.artifactId, { engine: 'files', target: request.target });
    if (!record) throw new TidemarkError('ARTIFACT_NOT_FOUND', `no committed files snapshot "${request.artifactId}" of target "${request.target}"; list them with catalog.list (engine files)`);
    return record.manifest;
  }
  const newest = catalog.select({ engine: 'files', target: request.target })[0];
  if (!newest) throw new TidemarkError('ARTIFACT_NOT_FOUND', `target "${request.target}" has no committed files snapshot yet (engine files); back it up first`);
  return newest.manifest;
}

/** A tree path from what a person types: no leading or trailing "/", "." for the root; ".." is refused. */
export function normalisePath(text: string): string {
  const segments = text.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new TidemarkError('COMMAND_INVALID', `path "${text}": ".." is not allowed; give a path relative to the snapshot root`);
  return segments.join('/');
}

export function toCatalogTreeEntry(entry: TreeEntry): CatalogTreeEntry {
  const problem = entry.problem ?? (entry.changedDuringBackup ? 'changed_during_backup' : undefined);
  return {
    path: entry.path,
    type: entry.type,
    size: entry.size,
    mode: entry.mode,
    mtime: isoOfNanoseconds(entry.mtimeNs),
    ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}),
    ...(entry.linkTo !== undefined ? { linkTo: entry.linkTo } : {}),
    ...(problem !== undefined ? { problem } : {}),
  };
}

const NS_PER_MS = 1_000_000n;

function isoOfNanoseconds(mtimeNs: string): string {
  const at = /^-?\d{1,30}$/.test(mtimeNs) ? new Date(Number(BigInt(mtimeNs) / NS_PER_MS)) : new Date(Number.NaN);
  // A time outside what Date can show (a corrupt or absurd mtime) is listed as the epoch.
  return Number.isNaN(at.getTime()) ? new Date(0).toISOString() : at.toISOString();
}
