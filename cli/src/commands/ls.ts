import type { CatalogTreeEntry, CatalogTreeReply } from '@tidemark/contracts';
import type { Command } from '../args.js';
import { treeCatalog } from '../catalog-client.js';
import type { CommandDeps } from './request.js';

type LsCommand = Extract<Command, { name: 'ls' }>;

export async function runLs(command: LsCommand, deps: Pick<CommandDeps, 'nc' | 'io' | 'json' | 'timeoutMs'>): Promise<number> {
  const reply = await treeCatalog(deps.nc, {
    target: command.target,
    ...(command.artifactId !== undefined ? { artifactId: command.artifactId } : {}),
    ...(command.path !== undefined ? { path: command.path } : {}),
    ...(command.recursive ? { recursive: true } : {}),
    ...(command.limit !== undefined ? { limit: command.limit } : {}),
  }, deps.timeoutMs);
  deps.io.out(deps.json ? JSON.stringify(reply) : formatTreeListing(reply));
  return 0;
}

const TYPE_CHAR: Readonly<Record<CatalogTreeEntry['type'], string>> = { file: '-', dir: 'd', symlink: 'l', hardlink: '-' };

/** "drwxr-xr-x", "-rwsr-xr-x", "lrwxrwxrwx" as ls prints them. */
export function formatMode(type: CatalogTreeEntry['type'], mode: number): string {
  const bits = (shift: number, special: number, specialChar: string) => {
    const r = mode & (4 << shift) ? 'r' : '-';
    const w = mode & (2 << shift) ? 'w' : '-';
    const x = mode & (1 << shift);
    const s = mode & special;
    return `${r}${w}${s ? (x ? specialChar : specialChar.toUpperCase()) : x ? 'x' : '-'}`;
  };
  return `${TYPE_CHAR[type]}${bits(6, 0o4000, 's')}${bits(3, 0o2000, 's')}${bits(0, 0o1000, 't')}`;
}

/** One line per entry, ls -l-like: mode, size, mtime (UTC), path, and "-> target" for links. */
export function formatTreeListing(reply: CatalogTreeReply): string {
  const sizes = reply.entries.map((e) => String(e.size));
  const width = Math.max(0, ...sizes.map((s) => s.length));
  const lines = reply.entries.map((e, i) => {
    const when = `${e.mtime.slice(0, 10)} ${e.mtime.slice(11, 16)}`;
    const link = e.type === 'symlink' ? ` -> ${e.linkTarget ?? '?'}` : e.type === 'hardlink' ? ` => ${e.linkTo ?? '?'} (hard link)` : '';
    const problem = e.problem ? `  [${e.problem.replaceAll('_', ' ')}]` : '';
    return `${formatMode(e.type, e.mode)}  ${(sizes[i] ?? '').padStart(width)}  ${when}  ${e.type === 'dir' ? `${e.path}/` : e.path}${link}${problem}`;
  });
  const header = `snapshot ${reply.artifactId}: ${reply.entries.length} entr${reply.entries.length === 1 ? 'y' : 'ies'}`;
  const tail = reply.truncated ? [`… more entries follow: raise --limit or list a narrower path`] : [];
  return [header, ...lines, ...tail].join('\n');
}
