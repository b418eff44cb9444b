// Whether PostgreSQL's OS user can reach a path, and whether a unix socket path can be bound.
// When Tidemark runs as root, the servers and tools it starts run as that user (see os-user.ts),
// and a directory above their data that root made 0700 stops them with a bare EACCES.
import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { TidemarkError } from '@tidemark/contracts';

export interface OsUserIds {
  readonly uid: number;
  readonly gid: number;
}

/** The owner, group and mode of a directory: what decides who may search it. */
export interface DirectoryAccess {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/**
 * Whether `user` may search (x) `directory`. POSIX checks one class only, the first that matches:
 * the owner's bits when the user owns it, else the group's when the user is in its group, else
 * the others' bits; a class that matches and lacks x denies, whatever the other classes allow.
 * Only the primary group counts: servers spawned by Node with a uid and gid get no supplementary groups.
 */
export function maySearch(directory: DirectoryAccess, user: OsUserIds): boolean {
  const bit = directory.uid === user.uid ? 0o100 : directory.gid === user.gid ? 0o010 : 0o001;
  return (directory.mode & bit) !== 0;
}

export interface BlockedDirectory {
  readonly path: string;
  /** Permission bits (mode & 0o777). */
  readonly mode: number;
}

/** The existing directories above `path` that `user` may not search, nearest first. */
export async function blockedDirectoriesAbove(path: string, user: OsUserIds): Promise<BlockedDirectory[]> {
  const blocked: BlockedDirectory[] = [];
  for (let current = dirname(resolve(path)); ; current = dirname(current)) {
    const info = await stat(current).catch(() => undefined);
    if (info !== undefined && !maySearch(info, user)) blocked.push({ path: current, mode: info.mode & 0o777 });
    if (dirname(current) === current) return blocked;
  }
}

/** Names each blocked directory with its mode: "/a (mode 700), /a/b (mode 750)". */
export const describeBlocked = (blocked: readonly BlockedDirectory[]): string =>
  blocked.map((directory) => `${directory.path} (mode ${directory.mode.toString(8)})`).join(', ');

export interface ReachableRequirement {
  /** What must be reached, for the message: "the node binary /usr/bin/node". */
  readonly what: string;
  /** The OS user's name, for the message. */
  readonly osUser: string;
  /** The other way out, after "make it searchable (chmod o+x …) or": "set pg.workDir elsewhere". */
  readonly otherwise: string;
}

/**
 * Fails with CONFIG_INVALID naming every directory above `path` that `user` may not search.
 * `user` undefined (we are not root, so the server runs as us) checks nothing.
 */
export async function requireReachable(path: string, user: OsUserIds | undefined, requirement: ReachableRequirement): Promise<void> {
  if (user === undefined) return;
  const blocked = await blockedDirectoriesAbove(path, user);
  if (blocked.length === 0) return;
  throw new TidemarkError(
    'CONFIG_INVALID',
    `the ${requirement.osUser} OS user (uid ${user.uid}) cannot reach ${requirement.what}: it may not enter ${describeBlocked(blocked)}; ` +
      `make ${blocked.length > 1 ? 'them' : 'it'} searchable (chmod o+x ${blocked.map((b) => b.path).join(' ')}) or ${requirement.otherwise}`,
  );
}

/** sun_path holds 108 bytes on Linux, its NUL included: a longer unix socket path cannot be bound. */
export const MAX_SOCKET_PATH_BYTES = 107;

export const socketPathFits = (path: string): boolean => Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES;

/** PostgreSQL's unix socket in `directory`; the longest one (port 65535) by default. */
export const pgSocketPath = (directory: string, port = 65_535): string => join(directory, `.s.PGSQL.${port}`);
