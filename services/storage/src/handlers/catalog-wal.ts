// catalog.wal: a summary of the pg WAL archive per target and cluster, read from the bucket
// (listing only, no manifest reads): what `tidemark status` shows beside the artifacts.
import { CatalogWalRequest, parseMessage, toErrorInfo, type CatalogWalReply, type WalArchiveSummary } from '@tidemark/contracts';
import { parseWalFileName } from '@tidemark/pg';
import type { StorageBackend } from '@tidemark/storage';
import { bytesOf, listWalObjects } from '../wal/objects.js';
import type { ErrorReply } from './catalog-requests.js';

export async function summariseWalArchive(request: unknown, backend: Pick<StorageBackend, 'list'>): Promise<CatalogWalReply | ErrorReply> {
  try {
    const parsed = parseMessage(CatalogWalRequest, request ?? {});
    const objects = await listWalObjects(backend, parsed.target);
    type Building = { summary: { -readonly [K in keyof WalArchiveSummary]: WalArchiveSummary[K] }; newestAt?: Date };
    const clusters = new Map<string, Building>();
    for (const file of objects.values()) {
      const key = `${file.target}/${file.systemIdentifier}`;
      let cluster = clusters.get(key);
      if (!cluster) {
        cluster = { summary: { target: file.target, systemIdentifier: file.systemIdentifier, current: false, segments: 0, partials: 0, histories: 0, storedBytes: 0, timelines: [] } };
        clusters.set(key, cluster);
      }
      cluster.summary.storedBytes += bytesOf(file);
      const name = parseWalFileName(file.file);
      if (!file.manifest || !name) continue; // uncommitted uploads count as bytes only
      if (!cluster.newestAt || file.manifest.modifiedAt > cluster.newestAt) {
        cluster.newestAt = file.manifest.modifiedAt;
        cluster.summary.newestFile = file.file;
        cluster.summary.newestArchivedAt = file.manifest.modifiedAt.toISOString();
      }
      if (name.kind === 'history') {
        cluster.summary.histories += 1;
        continue;
      }
      if (!cluster.summary.timelines.includes(name.timeline)) cluster.summary.timelines.push(name.timeline);
      if (name.partial) {
        cluster.summary.partials += 1;
        continue;
      }
      cluster.summary.segments += 1;
      // Names sort by timeline, then position: the last is the newest timeline's newest segment.
      if (cluster.summary.firstSegment === undefined || file.file < cluster.summary.firstSegment) cluster.summary.firstSegment = file.file;
      if (cluster.summary.lastSegment === undefined || file.file > cluster.summary.lastSegment) cluster.summary.lastSegment = file.file;
    }
    const newestByTarget = new Map<string, Building>();
    for (const cluster of clusters.values()) {
      cluster.summary.timelines.sort((a, b) => a - b);
      const seen = newestByTarget.get(cluster.summary.target);
      if (cluster.newestAt && (!seen?.newestAt || cluster.newestAt > seen.newestAt)) newestByTarget.set(cluster.summary.target, cluster);
    }
    for (const cluster of newestByTarget.values()) cluster.summary.current = true;
    const archives = [...clusters.values()]
      .map((c) => c.summary)
      .sort((a, b) => (a.target === b.target ? Number(b.current) - Number(a.current) : a.target < b.target ? -1 : 1));
    return { archives };
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
}
