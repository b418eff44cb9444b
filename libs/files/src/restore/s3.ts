// restoreToS3: the files of a tree as objects under bucket/prefix, each a streaming PUT of its
// chunks in order (the size is known, so the client sizes its parts and holds one). S3 has no
// directories, symlinks or hard links: directories and symlinks are skipped (listed), and every
// path of a hard-link group becomes an object with the group's content.
import { Readable } from 'node:stream';
import { Client } from 'minio';
import { TidemarkError } from '@tidemark/contracts';
import type { ChunkId, ChunkRepository } from '@tidemark/chunks';
import type { TreeEntry } from '../tree/entry.js';
import { bytesOf } from '../tree/paths.js';
import type { RestoreSummary, RestoreToDirectoryOptions } from './api.js';
import { BoundedWork } from './bounded-work.js';
import { checkEntryValues, displayPath, PathSelection, pathKey, TreeConfinement } from './confine.js';
import { asRestoreError, RestoreRefusedError, type Refused, type Skipped } from './errors.js';
import { throwIfAborted } from './file-batch.js';
import { linkTargetsToKeep } from './link-targets.js';
import { ProgressReporter } from './progress.js';

const DEFAULT_CONCURRENCY = 4;
/** Part size of the multipart uploads: with the default concurrency, at most 64 MiB buffered. */
const PART_BYTES = 16 * 1024 * 1024;
const MAX_KEY_BYTES = 1024;
/** Errors that retrying cannot fix: credentials, bucket names, arguments. */
const PERMANENT_S3_CODES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidBucketName', 'AllAccessDisabled', 'InvalidArgument']);

export interface RestoreToS3Options {
  readonly tree: () => AsyncIterable<TreeEntry>;
  readonly repository: ChunkRepository;
  readonly endpoint: string;
  readonly region?: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  /** Key prefix the tree's paths are written under ('' or ending in '/'). */
  readonly prefix: string;
  readonly paths?: readonly string[];
  /**
   * Without it, a prefix that already holds objects is refused (RESTORE_TARGET_EXISTS). With it,
   * objects of the tree replace those of the same keys; other objects under the prefix are left.
   */
  readonly overwrite?: boolean;
  readonly concurrency?: number;
  readonly onProgress?: RestoreToDirectoryOptions['onProgress'];
  readonly signal?: AbortSignal;
}

/**
 * Restores the files of a tree as objects under bucket/prefix (streaming PUTs). Refused entries
 * (confinement, or a path that cannot be a key) are not written; the rest is, and then the restore
 * fails with RESTORE_PATH_REFUSED. A failed S3 restore leaves the objects it wrote.
 */
export async function restoreToS3(options: RestoreToS3Options): Promise<RestoreSummary> {
  const { repository, bucket, signal } = options;
  const prefix = options.prefix === '' || options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
  const selection = options.paths !== undefined && options.paths.length > 0 ? new PathSelection(options.paths) : undefined;
  throwIfAborted(signal);
  try {
    const client = s3Client(options);
    const keep = await linkTargetsToKeep(options.tree(), selection, true);
    await s3Call(`opening bucket ${JSON.stringify(bucket)}`, async () => {
      if (!(await client.bucketExists(bucket))) await client.makeBucket(bucket, options.region ?? 'us-east-1');
    });
    if (options.overwrite !== true && (await s3Call(`listing s3://${bucket}/${prefix}`, () => holdsObjects(client, bucket, prefix)))) {
      throw new TidemarkError('RESTORE_TARGET_EXISTS', `s3://${bucket}/${prefix} already holds objects; restore under a new prefix or ask for overwrite`);
    }

    const refused: Refused[] = [];
    const skipped: Skipped[] = [];
    const counts = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
    const kept = new Map<string, TreeEntry>();
    const progress = new ProgressReporter(options.onProgress);
    const zeroChunks = new Set([repository.chunkId(Buffer.alloc(repository.chunker.maxBytes))]);
    const uploads = new BoundedWork(Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY));
    const upload = (key: string, entry: TreeEntry, content: TreeEntry): Promise<void> =>
      uploads.start(async () => {
        await s3Call(`writing s3://${bucket}/${key}`, () => client.putObject(bucket, key, contentOf(content, repository, zeroChunks, signal), content.size));
        counts.files += 1;
        counts.bytes += content.size;
        progress.fileDone(content.size, entry.path);
      });

    const confinement = new TreeConfinement();
    try {
      for await (const entry of options.tree()) {
        throwIfAborted(signal);
        const admission = confinement.admit(entry);
        if (admission.ok && entry.type === 'file' && keep.has(pathKey(admission.path))) kept.set(pathKey(admission.path), entry);
        if (selection !== undefined && !selection.selects(admission.path)) continue;
        if (!admission.ok) {
          refused.push({ path: String(entry.path), reason: admission.reason });
          continue;
        }
        checkEntryValues(entry);
        if (entry.type === 'dir' || entry.type === 'symlink') {
          skipped.push({ path: entry.path, reason: `S3 has no ${entry.type === 'dir' ? 'directories' : 'symlinks'}` });
          continue;
        }
        const content = entry.type === 'hardlink' ? kept.get(pathKey(bytesOf(entry.linkTo ?? '', entry.linkToBase64))) : entry;
        if (content === undefined) {
          refused.push({ path: entry.path, reason: 'the hard link target is not a file of the snapshot' });
          continue;
        }
        if (content.problem !== undefined) {
          skipped.push({ path: entry.path, reason: `not stored as good: ${content.problem}` });
          continue;
        }
        if (content !== entry) checkEntryValues(content);
        if (entry.pathBase64 !== undefined) {
          refused.push({ path: entry.path, reason: 'the name is not valid UTF-8, which an S3 key must be' });
          continue;
        }
        const key = `${prefix}${entry.path}`;
        if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
          refused.push({ path: entry.path, reason: `the key would be longer than S3's ${MAX_KEY_BYTES} bytes` });
          continue;
        }
        await upload(key, entry, content);
      }
    } catch (error) {
      if (!uploads.failed) uploads.fail(error);
    }
    await uploads.drain();
    progress.finish();
    const summary: RestoreSummary = { ...counts, refused, ...(skipped.length > 0 ? { skipped } : {}) };
    if (refused.length > 0) throw new RestoreRefusedError(summary, 'everything else was restored');
    return summary;
  } catch (error) {
    throw asRestoreError(error);
  }
}

function s3Client(options: RestoreToS3Options): Client {
  let url: URL;
  try {
    url = new URL(options.endpoint.includes('://') ? options.endpoint : `https://${options.endpoint}`);
  } catch (error) {
    throw new TidemarkError('CONFIG_INVALID', `S3 endpoint ${JSON.stringify(options.endpoint)} is not a valid URL; use e.g. http://minio:9000`, { cause: error });
  }
  const useSSL = url.protocol === 'https:';
  return new Client({
    endPoint: url.hostname,
    ...(url.port === '' ? {} : { port: Number(url.port) }),
    useSSL,
    accessKey: options.accessKey,
    secretKey: options.secretKey,
    region: options.region ?? 'us-east-1',
    pathStyle: true,
    partSize: PART_BYTES,
  });
}

async function holdsObjects(client: Client, bucket: string, prefix: string): Promise<boolean> {
  const listing = client.listObjectsV2(bucket, prefix, true);
  try {
    for await (const item of listing as AsyncIterable<{ name?: string }>) {
      if (item.name !== undefined) return true;
    }
    return false;
  } finally {
    listing.destroy();
  }
}

/** A file's content, chunk after chunk in order; a chunk of zeros known by its id is not read. */
function contentOf(entry: TreeEntry, repository: ChunkRepository, zeroChunks: ReadonlySet<ChunkId>, signal: AbortSignal | undefined): Readable {
  return Readable.from(
    (async function* chunks() {
      for (const chunk of entry.chunks ?? []) {
        throwIfAborted(signal);
        if (zeroChunks.has(chunk.id)) {
          yield Buffer.alloc(chunk.size);
          continue;
        }
        const plain = await repository.readChunk(chunk.id);
        if (plain.length !== chunk.size) throw new TidemarkError('INTEGRITY_FORMAT', `chunk ${chunk.id} of ${displayPath(entry)} holds ${plain.length} bytes, the tree says ${chunk.size}`);
        yield plain;
      }
    })(),
    { objectMode: false },
  );
}

/** Runs one S3 call; the client's failures become STORAGE_UNAVAILABLE (retryable unless permanent). */
async function s3Call<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof TidemarkError) throw error;
    const code = (error as { code?: unknown }).code;
    const retryable = !(typeof code === 'string' && PERMANENT_S3_CODES.has(code));
    throw new TidemarkError('STORAGE_UNAVAILABLE', `${what} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable });
  }
}
