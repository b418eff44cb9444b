// How a local file is opened for a backup and looked at again after it was read: the same in the
// codec worker (synchronous calls) and in storeFileOnThisThread (promises).
import { constants, type BigIntStats } from 'node:fs';
import type { StoredFile } from './api.js';

/** O_NOFOLLOW: a file replaced by a symlink since the walk is not followed; O_NONBLOCK: nor does a FIFO hang the read. */
export const LOCAL_READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** What opened at the path is not a regular file (any more): the snapshot counts it as vanished. */
export function notARegularFile(): Error {
  return Object.assign(new Error('it is no longer a regular file'), { code: 'ENOTREG' });
}

/** The lstat after reading as StoredFile reports it: gone (null), its size and mtime, or why it could not be taken. */
export function afterReading(stats: BigIntStats | undefined, error?: unknown): StoredFile['after'] {
  if (error !== undefined) return (error as { code?: unknown }).code === 'ENOENT' ? null : { error: error instanceof Error ? error.message : String(error) };
  return stats === undefined ? null : { size: Number(stats.size), mtimeNs: stats.mtimeNs.toString() };
}
