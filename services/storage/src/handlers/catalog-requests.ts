// Catalog request/reply: plain functions from a decoded request to a reply document.
import {
  CatalogDescribeRequest, CatalogListRequest, parseMessage, toErrorInfo, TidemarkError,
  type ErrorInfo, type Manifest, type VerificationRecord,
} from '@tidemark/contracts';
import type { Catalog } from '../catalog/catalog.js';
import type { CatalogEntry, VerificationStatus } from '../catalog/entry.js';

/** Replies stay well under NATS's default 1 MiB payload limit. */
export const DEFAULT_LIST_LIMIT = 1000;

export interface CatalogListReply {
  readonly artifacts: CatalogEntry[];
  /** How many artifacts matched before `limit` applied. */
  readonly total: number;
}

export interface CatalogDescribeReply {
  readonly manifest: Manifest;
  readonly verification: VerificationRecord | null;
  readonly status: VerificationStatus;
}

export interface ErrorReply {
  readonly error: ErrorInfo;
}

export function listArtifacts(request: unknown, catalog: Catalog): CatalogListReply | ErrorReply {
  try {
    const parsed = parseMessage(CatalogListRequest, request);
    const all = catalog.list({ engine: parsed.engine, target: parsed.target });
    return { artifacts: all.slice(0, parsed.limit ?? DEFAULT_LIST_LIMIT), total: all.length };
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
}

export async function describeArtifact(request: unknown, catalog: Catalog): Promise<CatalogDescribeReply | ErrorReply> {
  try {
    const parsed = parseMessage(CatalogDescribeRequest, request);
    const record = await catalog.find(parsed.artifactId, { engine: parsed.engine, target: parsed.target });
    if (!record) {
      const where = parsed.engine && parsed.target ? ` in ${parsed.engine}/${parsed.target}` : '';
      throw new TidemarkError('ARTIFACT_NOT_FOUND', `no committed artifact "${parsed.artifactId}"${where}; list artifacts with catalog.list`);
    }
    return { manifest: record.manifest, verification: record.verification ?? null, status: record.entry.verification };
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
}
