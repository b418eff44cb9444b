// Creating things under the restore root, by path bytes, never through a symlink. Files and
// directories come first and symlinks and hard links last, so while files are written the target
// holds only directories and files this restore made; the checks here (lstat of every parent)
// hold even so, and links get a fresh check of every parent at their own creation.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir } from 'node:fs/promises';
import { pathKey } from './confine.js';

const SLASH = 0x2f;
/** Longest name that still leaves room for the temp decoration within NAME_MAX (255). */
const LONGEST_DECORATED_NAME = 200;
/** Directories this restore did not find in the tree (above selected paths, or missing entries). */
const IMPLICIT_DIRECTORY_MODE = 0o755;

/** An entry that cannot be created where it is: recorded as refused, never written. */
export class Refusal extends Error {}

export class ConfinedRoot {
  readonly root: Buffer;
  /** Directories known to be real ones under the root (made or checked by this restore). */
  private readonly directories = new Set<string>();

  constructor(root: string) {
    this.root = Buffer.from(root);
  }

  /** The absolute path of a relative, already validated path. */
  absolute(relative: Buffer): Buffer {
    return Buffer.concat([this.root, Buffer.of(SLASH), relative]);
  }

  /**
   * Makes sure every parent of `relative` is a real directory, creating missing ones. `fresh`
   * ignores what is known and lstats each one again (for links, created after other links).
   */
  async ensureParents(relative: Buffer, fresh = false): Promise<void> {
    for (let slash = relative.indexOf(SLASH); slash !== -1; slash = relative.indexOf(SLASH, slash + 1)) {
      await this.ensureDirectory(relative.subarray(0, slash), IMPLICIT_DIRECTORY_MODE, fresh);
    }
  }

  /** Makes `relative` a real directory (its parents must be ensured). Returns true when it was created. */
  async ensureDirectory(relative: Buffer, mode: number, fresh = false): Promise<boolean> {
    const key = pathKey(relative);
    if (!fresh && this.directories.has(key)) return false;
    const path = this.absolute(relative);
    let created = true;
    if (fresh) {
      created = (await kindAt(path)) === undefined;
      if (!created) await this.requireDirectory(path, relative);
      else await mkdir(path, { mode });
    } else {
      await mkdir(path, { mode }).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        created = false;
        await this.requireDirectory(path, relative);
      });
    }
    this.directories.add(key);
    return created;
  }

  /** A regular file made by this restore, reached through real directories only (a hard link's target). */
  async requireRestoredFile(relative: Buffer): Promise<void> {
    await this.ensureParentsExist(relative);
    if ((await kindAt(this.absolute(relative))) !== 'file') throw new Refusal('the hard link target was not restored as a file');
  }

  /** A temp name beside `relative`: ".<name>.tidemark-tmp-<random>". */
  tempFor(relative: Buffer): Buffer {
    const slash = relative.lastIndexOf(SLASH);
    const name = relative.subarray(slash + 1);
    const random = randomBytes(6).toString('hex');
    const temp = name.length > LONGEST_DECORATED_NAME ? Buffer.from(`.tidemark-tmp-${random}`) : Buffer.concat([Buffer.from('.'), name, Buffer.from(`.tidemark-tmp-${random}`)]);
    return this.absolute(slash === -1 ? temp : Buffer.concat([relative.subarray(0, slash + 1), temp]));
  }

  private async ensureParentsExist(relative: Buffer): Promise<void> {
    for (let slash = relative.indexOf(SLASH); slash !== -1; slash = relative.indexOf(SLASH, slash + 1)) {
      await this.requireDirectory(this.absolute(relative.subarray(0, slash)), relative.subarray(0, slash));
    }
  }

  private async requireDirectory(path: Buffer, relative: Buffer): Promise<void> {
    const kind = await kindAt(path);
    if (kind !== 'dir') throw new Refusal(`${JSON.stringify(relative.toString('utf8'))} is ${kind === undefined ? 'missing' : `a ${kind}`}, not a directory`);
  }
}

async function kindAt(path: Buffer): Promise<'dir' | 'file' | 'symlink' | 'other' | undefined> {
  const found = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (found === undefined) return undefined;
  return found.isSymbolicLink() ? 'symlink' : found.isDirectory() ? 'dir' : found.isFile() ? 'file' : 'other';
}
