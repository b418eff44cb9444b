// Building WAL archives for tests: listings for the planners, and committed files (manifest +
// encoded data, through the real WalArchive) for the runners. The content need not be real WAL.
import { createHash } from 'node:crypto';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Manifest, WalFileManifest } from '@tidemark/contracts';
import { encodeStream, type EncryptionKey } from '@tidemark/pipeline';
import { parseWalFileName, segmentNameAt } from '@tidemark/pg';
import { walFileKeys, type ArtifactStore, type WalArchive } from '@tidemark/storage';
import type { WalListing } from '../src/wal/archive-index.js';
import type { BaseBackupStart } from '../src/wal/check.js';
import { manifest } from './fixtures.js';

export const SYSID = '7300000000000000001';
export const OTHER_SYSID = '7400000000000000002';

/** Segment names of a timeline, positions from..to inclusive. */
export const segs = (timeline: number, from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => segmentNameAt(timeline, from + i));

/** A listing: each file committed `minutesAgo` before `now`. */
export function listing(now: Date, files: readonly string[], options: { minutesAgo?: number; sysid?: string } = {}): WalListing[] {
  const at = new Date(now.getTime() - (options.minutesAgo ?? 30) * 60_000);
  return files.map((file) => ({ systemIdentifier: options.sysid ?? SYSID, file, modifiedAt: at }));
}

export function baseStart(artifactId: string, startLsn: string, options: { timeline?: number; sysid?: string; createdAt?: string } = {}): BaseBackupStart {
  return { artifactId, systemIdentifier: options.sysid ?? SYSID, startLsn, startTimeline: options.timeline ?? 1, createdAt: options.createdAt ?? '2025-01-01T00:00:00.000Z' };
}

/** Commits one WAL file through the WalArchive (data first, manifest last). */
export async function archiveFile(
  archive: WalArchive,
  target: string,
  file: string,
  options: { sysid?: string; content?: string; key?: EncryptionKey } = {},
): Promise<WalFileManifest> {
  const sysid = options.sysid ?? SYSID;
  const parsed = parseWalFileName(file);
  if (!parsed) throw new Error(`not a WAL name: ${file}`);
  const raw = Buffer.from(options.content ?? `wal ${file}`);
  const { output, summary } = encodeStream(Readable.from([raw]), { compression: 'none', ...(options.key ? { key: options.key } : {}) });
  const saved = await archive.saveData(target, sysid, file, output);
  const facts = await summary;
  const m: WalFileManifest = {
    manifestVersion: 1, engine: 'pg', target, systemIdentifier: sysid, file,
    fileKind: parsed.kind === 'history' ? 'history' : parsed.partial ? 'partial' : 'segment',
    timeline: parsed.timeline, archivedAt: new Date().toISOString(), agent: { id: 'test', version: '0.0.0' },
    pipeline: facts.pipeline, data: { key: saved.key, storedBytes: saved.storedBytes, rawBytes: facts.rawBytes, sha256: facts.sha256 },
  };
  await archive.commit(m);
  return m;
}

/** Sets the commit time of a file in an fs-backed archive (the listing reports the manifest's mtime). */
export async function setArchivedAt(root: string, target: string, file: string, at: Date, sysid = SYSID): Promise<void> {
  await utimes(join(root, walFileKeys(target, sysid, file).manifest), at, at);
}

/** Commits a base backup artifact (kind base, PgBaseSourceFacts) through the real ArtifactStore. */
export async function commitBaseBackup(
  store: ArtifactStore,
  options: { id: string; target: string; createdAt: Date; startLsn: string; timeline?: number; sysid?: string; verified?: boolean },
): Promise<Manifest> {
  const body = Buffer.from(`base ${options.id}`);
  const { key, storedBytes } = await store.saveData('pg', options.target, options.id, Readable.from([body]), body.length);
  const createdAt = options.createdAt.toISOString();
  const m = manifest({
    id: options.id, target: options.target, kind: 'base', format: 'pg_basebackup-tar', createdAt, requestId: `req-${options.id}`, verify: false,
    source: {
      label: `tidemark ${options.id}`, startLsn: options.startLsn, checkpointLsn: options.startLsn, stopLsn: options.startLsn,
      startTimeline: options.timeline ?? 1, stopTimeline: options.timeline ?? 1, startedAt: createdAt, stoppedAt: createdAt,
      serverVersion: '15.8', serverVersionNum: 150008, systemIdentifier: options.sysid ?? SYSID, walSegmentSize: 16 * 1024 * 1024,
      pgvectorVersion: null, backupManifest: { bytes: 0 },
    },
    data: { key, storedBytes, rawBytes: storedBytes, sha256: createHash('sha256').update(body).digest('hex') },
  });
  await store.commit(m);
  return m;
}
