// Realistic file trees for the files engine's tests and benchmark: many small documents in nested
// directories, big files, sparse files, and what real trees also hold (empty directories, symlinks
// that dangle or loop, hard links, names with newlines, spaces and bytes that are not UTF-8).
// Every byte and name follows from the seed, so a run can be repeated and two runs (say, Tidemark's
// and restic's) can be given the same tree.
import { createCipheriv, createHash } from 'node:crypto';
import { link, mkdir, open, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** One kind of regular file: `count` files with log-uniform sizes, spread over nested directories. */
export interface FileGroupSpec {
  /** The top directory of the group, relative to the root (e.g. 'docs'). */
  readonly under: string;
  readonly count: number;
  readonly minBytes: number;
  readonly maxBytes: number;
  /**
   * Share of the files that are incompressible (PDF-, image- or archive-like); the others are
   * text-like documents that compress about 2:1 (gzip). Default 0.3.
   */
  readonly binaryFraction?: number;
  /** Files per leaf directory (default 100) and subdirectories per directory (default 10). */
  readonly perDirectory?: number;
  readonly fanout?: number;
}

export interface TreeSpec {
  /** Every byte and name follows from it. */
  readonly seed: string;
  readonly groups?: readonly FileGroupSpec[];
  /** Files of this logical size written as holes with a few 4 KiB islands of data (see SPARSE_ISLANDS). */
  readonly sparseFiles?: readonly { readonly path: string; readonly logicalBytes: number }[];
  /** Directories with nothing in them, some nested in each other. */
  readonly emptyDirectories?: number;
  /** Under `odd/`: symlinks to a file, to a directory, absolute, dangling, looping (two-step and self). */
  readonly symlinks?: boolean;
  /** Under `odd/`: this many hard-link groups of two or three names, one group across directories. */
  readonly hardLinkGroups?: number;
  /** Under `odd/`: names with a newline, spaces (leading, inner, trailing) and invalid UTF-8 (a file and a directory). */
  readonly oddNames?: boolean;
}

export interface BuiltTree {
  readonly root: string;
  /** Regular files of the groups, relative to the root, in creation order: what mutateTree picks from. */
  readonly files: readonly string[];
  /** Content bytes of the regular files (groups, hard-link groups counted once, odd names); sparse files not included. */
  readonly bytes: number;
  readonly sparseFiles: readonly string[];
  readonly emptyDirectories: readonly string[];
  /** Symlink path → its target, as written. */
  readonly symlinks: ReadonlyMap<string, string>;
  /** Each group: the first name, then its other names. */
  readonly hardLinks: readonly (readonly string[])[];
  /** Odd names as the exact bytes of their path relative to the root (some are not valid UTF-8). */
  readonly oddNames: readonly Buffer[];
}

/** Offsets (fractions of the logical size) where a sparse file holds 4 KiB of data; the rest are holes. */
export const SPARSE_ISLANDS = [0, 0.5, 1] as const;
const ISLAND_BYTES = 4096;
const WRITES_IN_FLIGHT = 16;
const STREAM_PIECE = 1 << 20;

/** Builds the tree under `root` (created when missing; expected empty). */
export async function buildTree(root: string, spec: TreeSpec): Promise<BuiltTree> {
  await mkdir(root, { recursive: true });
  const files: string[] = [];
  let bytes = 0;
  for (const group of spec.groups ?? []) {
    const paths = groupPaths(group, spec.seed);
    await mkdirs(root, paths);
    await inParallel(paths, async (path, index) => {
      const size = logUniform(seededRandom(`${spec.seed}/${group.under}/size/${index}`), group.minBytes, group.maxBytes);
      await writeContent(join(root, path), contentSeed(spec.seed, path), size, path.endsWith('.bin') || path.endsWith('.pdf'));
      bytes += size;
    });
    files.push(...paths);
  }

  const sparseFiles: string[] = [];
  for (const sparse of spec.sparseFiles ?? []) {
    await writeSparse(join(root, sparse.path), spec.seed, sparse.logicalBytes);
    sparseFiles.push(sparse.path);
  }

  const emptyDirectories: string[] = [];
  for (let i = 0; i < (spec.emptyDirectories ?? 0); i++) {
    // Every third one nests inside the one before it: an empty directory inside an otherwise empty one.
    const path = i % 3 === 2 ? `${emptyDirectories[i - 1] ?? 'empty'}/inner-${i}` : `empty/dir-${i}`;
    await mkdir(join(root, path), { recursive: true });
    emptyDirectories.push(path);
  }
  // A directory that holds only nested empty directories is not itself empty.
  const leafEmpty = emptyDirectories.filter((path) => !emptyDirectories.some((other) => other.startsWith(`${path}/`)));

  const symlinks = new Map<string, string>();
  if (spec.symlinks === true) {
    await mkdir(join(root, 'odd/links'), { recursive: true });
    await writeContent(join(root, 'odd/links/target.txt'), contentSeed(spec.seed, 'odd/links/target.txt'), 2000, false);
    bytes += 2000;
    const links: [string, string][] = [
      ['odd/links/to-file', 'target.txt'],
      ['odd/links/to-directory', '..'],
      ['odd/links/absolute', '/nonexistent/tidemark/absolute-target'],
      ['odd/links/dangling', 'no-such-file'],
      ['odd/links/loop-a', 'loop-b'],
      ['odd/links/loop-b', 'loop-a'],
      ['odd/links/self', 'self'],
      ['odd/links/escaping', '../../../../../../etc/passwd'],
    ];
    for (const [path, target] of links) {
      await symlink(target, join(root, path));
      symlinks.set(path, target);
    }
  }

  const hardLinks: string[][] = [];
  for (let group = 0; group < (spec.hardLinkGroups ?? 0); group++) {
    const first = `odd/hardlinks/group-${group}/first.dat`;
    const others = [`odd/hardlinks/group-${group}/second.dat`];
    if (group === 0) others.push('odd/hardlinks/elsewhere/third.dat');
    await mkdirs(root, [first, ...others]);
    const size = 1000 + group * 7919;
    await writeContent(join(root, first), contentSeed(spec.seed, first), size, group % 2 === 1);
    bytes += size;
    for (const other of others) await link(join(root, first), join(root, other));
    hardLinks.push([first, ...others]);
  }

  const oddNames: Buffer[] = [];
  if (spec.oddNames === true) {
    await mkdir(join(root, 'odd/names'), { recursive: true });
    const latin1Directory = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1: not UTF-8
    const names: Buffer[] = [
      Buffer.from('odd/names/line\nbreak.txt'),
      Buffer.from('odd/names/with  inner spaces.txt'),
      Buffer.from('odd/names/ leading space.txt'),
      Buffer.from('odd/names/trailing space.txt '),
      Buffer.from('odd/names/tab\tand\u00e9\u6f22\u5b57.txt'),
      Buffer.concat([Buffer.from('odd/names/bytes-'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('.bin')]),
      Buffer.concat([Buffer.from('odd/names/'), latin1Directory, Buffer.from('/inside.txt')]),
    ];
    await mkdir(Buffer.concat([Buffer.from(`${root}/odd/names/`), latin1Directory]));
    for (const [i, name] of names.entries()) {
      const body = Buffer.from(`${name.toString('hex')} ${i}\n`);
      await writeFile(Buffer.concat([Buffer.from(`${root}/`), name]), body);
      bytes += body.length;
      oddNames.push(name);
    }
  }

  return { root, files, bytes, sparseFiles, emptyDirectories: leafEmpty, symlinks, hardLinks, oddNames };
}

export interface MutateOptions {
  /** The files to choose from (BuiltTree.files). */
  readonly files: readonly string[];
  /** Share of `files` whose content changes in place (same size), at least one. */
  readonly changeFraction: number;
  /** How many of the largest other files grow, and by how much each (default 1 MiB). */
  readonly grow?: number;
  readonly growBytes?: number;
  /** Which files and what bytes (default 'mutate'): the same options change the same files the same way. */
  readonly seed?: string;
}

export interface Mutation {
  /** Files rewritten in place: 64 bytes at a seeded offset. */
  readonly changed: readonly string[];
  readonly grown: readonly string[];
  /** Bytes written in all (changed regions and appended bytes). */
  readonly bytesWritten: number;
}

/** Changes about `changeFraction` of the files (a small edit each) and appends to the `grow` largest others. */
export async function mutateTree(root: string, options: MutateOptions): Promise<Mutation> {
  const seed = options.seed ?? 'mutate';
  const random = seededRandom(`${seed}/pick`);
  const count = Math.min(options.files.length, Math.max(1, Math.round(options.files.length * options.changeFraction)));
  const picked = new Set<number>();
  while (picked.size < count) picked.add(Math.floor(random() * options.files.length));
  const changed = [...picked].sort((a, b) => a - b).map((index) => options.files[index]!);
  let bytesWritten = 0;
  await inParallel(changed, async (path) => {
    const file = await open(join(root, path), 'r+');
    try {
      const { size } = await file.stat();
      const edit = Buffer.from(`<edited ${createHash('sha256').update(`${seed}/${path}`).digest('hex')}>`).subarray(0, Math.min(64, size));
      const offset = Math.floor(seededRandom(`${seed}/offset/${path}`)() * (size - edit.length + 1));
      await file.write(edit, 0, edit.length, offset);
      bytesWritten += edit.length;
    } finally {
      await file.close();
    }
  });

  const growBytes = options.growBytes ?? 1 << 20;
  const others = options.files.filter((_, index) => !picked.has(index));
  const sizes: { path: string; size: number }[] = [];
  if ((options.grow ?? 0) > 0) {
    await inParallel(others, async (path) => {
      sizes.push({ path, size: (await stat(join(root, path))).size });
    });
  }
  const grown = sizes
    .sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1))
    .slice(0, options.grow ?? 0)
    .map(({ path }) => path);
  for (const path of grown) {
    await appendContent(join(root, path), `${seed}/grow/${path}`, growBytes, path.endsWith('.bin') || path.endsWith('.pdf'));
    bytesWritten += growBytes;
  }
  return { changed, grown, bytesWritten };
}

/** Appends `bytes` of seeded content (text-like or incompressible) to a file. */
export async function appendContent(path: string, seed: string, bytes: number, binary: boolean): Promise<void> {
  const file = await open(path, 'a');
  try {
    for (const piece of contentPieces(seed, bytes, binary)) await file.write(piece);
  } finally {
    await file.close();
  }
}

// ---------------------------------------------------------------- layout

/** docs/3/07/doc-0000307.txt: leaf directories of `perDirectory` files, `fanout` per level. */
function groupPaths(group: FileGroupSpec, seed: string): string[] {
  const perDirectory = group.perDirectory ?? 100;
  const fanout = group.fanout ?? 10;
  const directories = Math.ceil(group.count / perDirectory);
  let depth = 1;
  while (fanout ** depth < directories) depth++;
  const digits = String(fanout - 1).length;
  const binaryFraction = group.binaryFraction ?? 0.3;
  const random = seededRandom(`${seed}/${group.under}/kinds`);
  const width = String(group.count).length;
  const paths: string[] = [];
  for (let i = 0; i < group.count; i++) {
    const levels: string[] = [];
    for (let level = depth - 1, rest = Math.floor(i / perDirectory); level >= 0; level--) {
      levels.push(String(Math.floor(rest / fanout ** level) % fanout).padStart(digits, '0'));
    }
    const extension = random() < binaryFraction ? (i % 2 === 0 ? 'pdf' : 'bin') : i % 3 === 0 ? 'md' : 'txt';
    paths.push(`${group.under}/${levels.join('/')}/doc-${String(i).padStart(width, '0')}.${extension}`);
  }
  return paths;
}

async function mkdirs(root: string, paths: readonly string[]): Promise<void> {
  const directories = new Set(paths.map((path) => path.slice(0, path.lastIndexOf('/'))));
  for (const directory of directories) await mkdir(join(root, directory), { recursive: true });
}

/** Runs `work` over `items`, WRITES_IN_FLIGHT at a time. */
async function inParallel<T>(items: readonly T[], work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(WRITES_IN_FLIGHT, items.length) }, worker));
}

// ---------------------------------------------------------------- content

const contentSeed = (seed: string, path: string) => `${seed}/content/${path}`;

async function writeContent(path: string, seed: string, bytes: number, binary: boolean): Promise<void> {
  if (bytes <= STREAM_PIECE) {
    await writeFile(path, [...contentPieces(seed, bytes, binary)][0] ?? Buffer.alloc(0));
    return;
  }
  const file = await open(path, 'w');
  try {
    for (const piece of contentPieces(seed, bytes, binary)) await file.write(piece);
  } finally {
    await file.close();
  }
}

/** A hole of `logicalBytes` with ISLAND_BYTES of data at each SPARSE_ISLANDS offset. */
async function writeSparse(path: string, seed: string, logicalBytes: number): Promise<void> {
  await mkdir(path.slice(0, path.lastIndexOf('/')), { recursive: true });
  await writeFile(path, '');
  await truncate(path, logicalBytes);
  const file = await open(path, 'r+');
  try {
    for (const at of SPARSE_ISLANDS) {
      const offset = Math.max(0, Math.min(logicalBytes - ISLAND_BYTES, Math.floor((at * logicalBytes) / ISLAND_BYTES) * ISLAND_BYTES));
      const island = [...contentPieces(`${seed}/sparse/${at}`, Math.min(ISLAND_BYTES, logicalBytes), true)][0];
      if (island !== undefined) await file.write(island, 0, island.length, offset);
    }
  } finally {
    await file.close();
  }
}

/**
 * The content of a file in pieces of at most STREAM_PIECE bytes, so a big file never sits in
 * memory. Binary: an AES-CTR keystream (incompressible, fast); text: seeded words in lines.
 */
function* contentPieces(seed: string, bytes: number, binary: boolean): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  if (binary) {
    const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    const zeros = Buffer.alloc(Math.min(bytes, STREAM_PIECE));
    for (let done = 0; done < bytes; done += STREAM_PIECE) {
      yield cipher.update(zeros.subarray(0, Math.min(STREAM_PIECE, bytes - done)));
    }
    return;
  }
  const random = seededRandom(seed);
  for (let done = 0; done < bytes; done += STREAM_PIECE) {
    yield textPiece(random, Math.min(STREAM_PIECE, bytes - done));
  }
}

// A Zipf-like vocabulary: common words often, rare words rarely, so text compresses about like prose.
const VOCABULARY = buildVocabulary(4096);

function buildVocabulary(size: number): Buffer[] {
  const random = seededRandom('vocabulary');
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  return Array.from({ length: size }, (_, rank) => {
    const length = 2 + Math.floor(random() * Math.min(10, 2 + Math.log2(rank + 2)));
    let word = '';
    for (let i = 0; i < length; i++) word += letters[Math.floor(random() ** 1.6 * letters.length)];
    return Buffer.from(word);
  });
}

function textPiece(random: () => number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  let lineStart = 0;
  while (at < bytes) {
    const word = VOCABULARY[Math.floor(random() ** 3 * VOCABULARY.length)]!;
    const n = Math.min(word.length, bytes - at);
    for (let i = 0; i < n; i++) out[at + i] = word[i]!;
    at += n;
    if (at < bytes) {
      out[at] = at - lineStart > 72 ? 0x0a : random() < 0.08 ? 0x2c : 0x20;
      if (out[at] === 0x0a) lineStart = at + 1;
      at++;
    }
  }
  return out;
}

/** A log-uniform integer in [min, max]: many small files, few big ones, as in real document stores. */
function logUniform(random: () => number, min: number, max: number): number {
  if (max <= min) return min;
  return Math.round(Math.exp(Math.log(Math.max(1, min)) + random() * (Math.log(max) - Math.log(Math.max(1, min)))));
}

/** mulberry32, seeded from sha256(seed): a fast deterministic stream in [0, 1). */
function seededRandom(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
