import type { Readable } from 'node:stream';
import type { Engine, Manifest, VerificationRecord } from '@tidemark/contracts';
import type { StorageBackend } from './backend.js';

export interface OrphanSweepResult {
  /** Keys removed: data objects no manifest references, older than the grace period. */
  readonly removed: readonly string[];
  /** Orphans younger than the grace period (perhaps a backup in progress), left alone. */
  readonly kept: readonly string[];
}

/** Artifact-level operations over a backend. The manifest is the commit point. */
export declare class ArtifactStore {
  constructor(backend: StorageBackend);
  readonly backend: StorageBackend;
  /** Saves the data stream under a fresh attempt key and returns that key and byte count. */
  saveData(engine: Engine, target: string, artifactId: string, body: Readable, size?: number): Promise<{ key: string; storedBytes: number }>;
  /** Validates and writes the manifest (commits the artifact). */
  commit(manifest: Manifest): Promise<void>;
  /** The committed manifest, or undefined when the artifact is not committed. Invalid JSON → INTEGRITY_FORMAT. */
  readManifest(engine: Engine, target: string, artifactId: string): Promise<Manifest | undefined>;
  /** All committed manifests, optionally of one engine/target, newest first. Skips (and reports via onInvalid) unreadable ones. */
  listManifests(filter?: { engine?: Engine; target?: string }, onInvalid?: (key: string, error: unknown) => void): Promise<Manifest[]>;
  openData(manifest: Manifest): Promise<Readable>;
  writeVerification(manifest: Manifest, record: VerificationRecord): Promise<void>;
  readVerification(manifest: Manifest): Promise<VerificationRecord | undefined>;
  /** Removes an artifact: manifest first (it becomes invisible at once), then everything else under its prefix. */
  remove(manifest: Manifest): Promise<void>;
  /** Removes data objects with no committed manifest older than `graceMs`. */
  sweepOrphans(graceMs: number, now?: Date): Promise<OrphanSweepResult>;
}
