import { isRetryable, type Engine, type Manifest, type VerificationRecord } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';
import { newestFirst, toCatalogEntry, type CatalogEntry } from './entry.js';

/** What the catalog reads from the bucket (the bucket is the truth; the catalog is an index of it). */
export type CatalogSource = Pick<ArtifactStore, 'listManifests' | 'readManifest' | 'readVerification'>;

export interface CatalogRecord {
  readonly entry: CatalogEntry;
  readonly manifest: Manifest;
  readonly verification: VerificationRecord | undefined;
}

export interface CatalogFilter {
  readonly engine?: Engine;
  readonly target?: string;
  readonly limit?: number;
}

const keyOf = (engine: Engine, target: string, artifactId: string) => `${engine}/${target}/${artifactId}`;

/**
 * An in-memory index of committed artifacts, rebuilt from the bucket alone. Events only tell it
 * which artifact to re-read; a refresh that runs while a rebuild is under way wins over the
 * (older) state the rebuild read.
 */
export class Catalog {
  private records = new Map<string, CatalogRecord>();
  /** Keys refreshed during the current rebuild, with their fresh state (undefined = gone). */
  private refreshedDuringRebuild: Map<string, CatalogRecord | undefined> | undefined;

  constructor(
    private readonly source: CatalogSource,
    private readonly onInvalid: (key: string, error: unknown) => void = () => {},
  ) {}

  get size(): number {
    return this.records.size;
  }

  /** Re-reads every manifest and verification record from the bucket. */
  async rebuild(): Promise<number> {
    const refreshed = new Map<string, CatalogRecord | undefined>();
    this.refreshedDuringRebuild = refreshed;
    try {
      const next = new Map<string, CatalogRecord>();
      const manifests = await this.source.listManifests(undefined, (key, error) => {
        // A storage outage is not a corrupt manifest: fail the rebuild rather than drop artifacts.
        if (isRetryable(error)) throw error;
        this.onInvalid(key, error);
      });
      for (const manifest of manifests) {
        const record = await this.readRecord(manifest);
        next.set(keyOf(manifest.engine, manifest.target, manifest.id), record);
      }
      for (const [key, record] of refreshed) {
        if (record) next.set(key, record);
        else next.delete(key);
      }
      this.records = next;
      return next.size;
    } finally {
      this.refreshedDuringRebuild = undefined;
    }
  }

  /** Re-reads one artifact from the bucket; returns its record, or undefined when it is not committed. */
  async refresh(engine: Engine, target: string, artifactId: string): Promise<CatalogRecord | undefined> {
    const key = keyOf(engine, target, artifactId);
    const manifest = await this.source.readManifest(engine, target, artifactId);
    const record = manifest ? await this.readRecord(manifest) : undefined;
    if (record) this.records.set(key, record);
    else this.records.delete(key);
    this.refreshedDuringRebuild?.set(key, record);
    return record;
  }

  /** Drops an artifact the service itself removed. */
  forget(engine: Engine, target: string, artifactId: string): void {
    const key = keyOf(engine, target, artifactId);
    this.records.delete(key);
    this.refreshedDuringRebuild?.set(key, undefined);
  }

  /** Entries newest first, optionally of one engine/target, at most `limit`. */
  list(filter: CatalogFilter = {}): CatalogEntry[] {
    const matching = this.select(filter).map((r) => r.entry);
    matching.sort(newestFirst);
    return filter.limit === undefined ? matching : matching.slice(0, filter.limit);
  }

  /** Full records (manifest included), newest first. */
  select(filter: Omit<CatalogFilter, 'limit'> = {}): CatalogRecord[] {
    const out: CatalogRecord[] = [];
    for (const record of this.records.values()) {
      if (filter.engine !== undefined && record.entry.engine !== filter.engine) continue;
      if (filter.target !== undefined && record.entry.target !== filter.target) continue;
      out.push(record);
    }
    return out.sort((a, b) => newestFirst(a.entry, b.entry));
  }

  /**
   * Finds an artifact by id. When engine and target are known and the index has not seen it yet
   * (an event still on its way), the bucket is asked directly.
   */
  async find(artifactId: string, scope: { engine?: Engine; target?: string } = {}): Promise<CatalogRecord | undefined> {
    for (const record of this.records.values()) {
      if (record.entry.artifactId !== artifactId) continue;
      if (scope.engine !== undefined && record.entry.engine !== scope.engine) continue;
      if (scope.target !== undefined && record.entry.target !== scope.target) continue;
      return record;
    }
    if (scope.engine !== undefined && scope.target !== undefined) return this.refresh(scope.engine, scope.target, artifactId);
    return undefined;
  }

  private async readRecord(manifest: Manifest): Promise<CatalogRecord> {
    let verification: VerificationRecord | undefined;
    try {
      verification = await this.source.readVerification(manifest);
    } catch (error) {
      // A storage outage must not make a verified artifact look unverified: let the caller retry.
      if (isRetryable(error)) throw error;
      // An unreadable (corrupt) record leaves the artifact listed as unverified, not hidden.
      this.onInvalid(`${keyOf(manifest.engine, manifest.target, manifest.id)}/verification`, error);
      verification = undefined;
    }
    return { entry: toCatalogEntry(manifest, verification), manifest, verification };
  }
}
