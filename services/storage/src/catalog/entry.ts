import type { CatalogEntry, Engine, Manifest, VerificationRecord, VerificationStatus } from '@tidemark/contracts';

export type { CatalogEntry, VerificationStatus };
export { VERIFICATION_STATUSES } from '@tidemark/contracts';

export function verificationStatus(manifest: Manifest, record: VerificationRecord | undefined): VerificationStatus {
  if (record) return record.status;
  return manifest.verify ? 'unverified' : 'not-required';
}

export function toCatalogEntry(manifest: Manifest, record: VerificationRecord | undefined): CatalogEntry {
  return {
    artifactId: manifest.id,
    engine: manifest.engine,
    target: manifest.target,
    kind: manifest.kind,
    format: manifest.format,
    requestId: manifest.requestId,
    createdAt: manifest.createdAt,
    finishedAt: manifest.finishedAt,
    storedBytes: manifest.data.storedBytes,
    rawBytes: manifest.data.rawBytes,
    sha256: manifest.data.sha256,
    compression: manifest.pipeline.compression,
    encrypted: manifest.pipeline.encryption !== null,
    verify: manifest.verify,
    ...(manifest.reason !== undefined ? { reason: manifest.reason } : {}),
    verification: verificationStatus(manifest, record),
    ...(record ? { verifiedAt: record.verifiedAt } : {}),
    ...(record?.error ? { verificationError: { code: record.error.code, message: record.error.message } } : {}),
  };
}

/** Newest first; artifact ids sort by time too, so they break ties deterministically. */
export function newestFirst(a: Pick<CatalogEntry, 'createdAt' | 'artifactId'>, b: Pick<CatalogEntry, 'createdAt' | 'artifactId'>): number {
  const byTime = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  if (byTime !== 0) return byTime;
  return a.artifactId < b.artifactId ? 1 : a.artifactId > b.artifactId ? -1 : 0;
}

export const targetKey = (engine: Engine, target: string): string => `${engine}/${target}`;
