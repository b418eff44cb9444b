import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Manifest, TidemarkError, VerificationRecord, type Engine } from '@tidemark/contracts';
import type { ObjectInfo, StorageBackend } from './backend.js';
import { readDocument, validate } from './documents.js';
import { ARTIFACT_ROOTS, MANIFEST_FILE, VERIFICATION_FILE, artifactKeys, parseArtifactKey } from './keys.js';

export interface OrphanSweepResult {
  /** Keys removed: data objects no manifest references, older than the grace period. */
  readonly removed: readonly string[];
  /** Orphans younger than the grace period (perhaps a backup in progress), left alone. */
  readonly kept: readonly string[];
}


const keysOf = (manifest: Manifest) => artifactKeys(manifest.engine, manifest.target, manifest.id);

/** Artifact-level operations over a backend. The manifest is the commit point. */
export class ArtifactStore {
  constructor(readonly backend: StorageBackend) {}

  /** Saves the data stream under a fresh attempt key and returns that key and byte count. */
  async saveData(engine: Engine, target: string, artifactId: string, body: Readable, size?: number): Promise<{ key: string; storedBytes: number }> {
    const key = artifactKeys(engine, target, artifactId).data(randomBytes(6).toString('hex'));
    const storedBytes = await this.backend.save(key, body, { ...(size === undefined ? {} : { size }), contentType: 'application/octet-stream' });
    return { key, storedBytes };
  }

  /** Validates and writes the manifest (commits the artifact). */
  async commit(manifest: Manifest): Promise<void> {
    const valid = validate(Manifest, manifest, `manifest of artifact ${JSON.stringify(manifest.id)}`);
    const keys = keysOf(valid);
    if (!valid.data.key.startsWith(keys.prefix)) {
      throw new TidemarkError('INTEGRITY_FORMAT', `manifest of artifact ${JSON.stringify(valid.id)} points at data ${JSON.stringify(valid.data.key)} outside its prefix ${keys.prefix}; save the data with saveData`);
    }
    await this.backend.save(keys.manifest, Buffer.from(`${JSON.stringify(valid, null, 2)}\n`), { contentType: 'application/json' });
  }

  /** The committed manifest, or undefined when the artifact is not committed. Invalid JSON → INTEGRITY_FORMAT. */
  async readManifest(engine: Engine, target: string, artifactId: string): Promise<Manifest | undefined> {
    return readDocument(this.backend, Manifest, artifactKeys(engine, target, artifactId).manifest);
  }

  /** All committed manifests, optionally of one engine/target, newest first. Skips (and reports via onInvalid) unreadable ones. */
  async listManifests(filter: { engine?: Engine; target?: string } = {}, onInvalid?: (key: string, error: unknown) => void): Promise<Manifest[]> {
    const prefix = filter.engine === undefined ? ARTIFACT_ROOTS.artifacts : `${ARTIFACT_ROOTS.artifacts}${filter.engine}/${filter.target === undefined ? '' : `${filter.target}/`}`;
    const manifests: Manifest[] = [];
    for await (const object of this.backend.list(prefix)) {
      const parts = parseArtifactKey(object.key);
      if (parts?.name !== MANIFEST_FILE) continue;
      if (filter.target !== undefined && parts.target !== filter.target) continue;
      try {
        const manifest = await readDocument(this.backend, Manifest, object.key);
        if (manifest === undefined) continue; // removed while we listed
        if (manifest.id !== parts.artifactId || manifest.engine !== parts.engine || manifest.target !== parts.target) {
          throw new TidemarkError('INTEGRITY_FORMAT', `manifest ${object.key} names artifact ${manifest.engine}/${manifest.target}/${manifest.id}, not the one its key says`);
        }
        manifests.push(manifest);
      } catch (error) {
        if (onInvalid === undefined) continue;
        onInvalid(object.key, error);
      }
    }
    return manifests.sort(newestFirst);
  }

  openData(manifest: Manifest): Promise<Readable> {
    return this.backend.open(manifest.data.key);
  }

  async writeVerification(manifest: Manifest, record: VerificationRecord): Promise<void> {
    const valid = validate(VerificationRecord, record, `verification record of artifact ${JSON.stringify(manifest.id)}`);
    await this.backend.save(keysOf(manifest).verification, Buffer.from(`${JSON.stringify(valid, null, 2)}\n`), { contentType: 'application/json' });
  }

  async readVerification(manifest: Manifest): Promise<VerificationRecord | undefined> {
    return readDocument(this.backend, VerificationRecord, keysOf(manifest).verification);
  }

  /** Removes an artifact: manifest first (it becomes invisible at once), then everything else under its prefix. */
  async remove(manifest: Manifest): Promise<void> {
    const keys = keysOf(manifest);
    await this.backend.remove(keys.manifest);
    const rest: string[] = [];
    for await (const object of this.backend.list(keys.prefix)) rest.push(object.key);
    for (const key of rest) await this.backend.remove(key);
  }

  /** Removes data objects with no committed manifest older than `graceMs`. */
  async sweepOrphans(graceMs: number, now: Date = new Date()): Promise<OrphanSweepResult> {
    const objects: ObjectInfo[] = [];
    for await (const object of this.backend.list(ARTIFACT_ROOTS.artifacts)) objects.push(object);

    // Which artifacts are committed, and which data keys their manifests claim.
    const committed = new Map<string, Manifest | 'unreadable' | undefined>();
    for (const object of objects) {
      const parts = parseArtifactKey(object.key);
      if (parts?.name !== MANIFEST_FILE) continue;
      committed.set(parts.prefix, await this.readManifestAt(object.key));
    }

    const removed: string[] = [];
    const kept: string[] = [];
    for (const object of objects) {
      const parts = parseArtifactKey(object.key);
      if (parts !== undefined && !this.isOrphan(object.key, parts.prefix, parts.name, committed)) continue;
      if (now.getTime() - object.modifiedAt.getTime() <= graceMs) {
        kept.push(object.key);
        continue;
      }
      // The listing is a snapshot: a backup may have committed since. Look again before removing.
      if (parts !== undefined && parts.name !== MANIFEST_FILE) {
        committed.set(parts.prefix, await this.readManifestAt(`${parts.prefix}${MANIFEST_FILE}`));
        if (!this.isOrphan(object.key, parts.prefix, parts.name, committed)) continue;
      }
      await this.backend.remove(object.key);
      removed.push(object.key);
    }
    return { removed, kept };
  }

  private isOrphan(key: string, prefix: string, name: string, committed: Map<string, Manifest | 'unreadable' | undefined>): boolean {
    const manifest = committed.get(prefix);
    if (manifest === undefined) return true; // no manifest: nothing under this prefix is committed
    // An unreadable manifest still marks a commit: leave its artifact for an operator to inspect.
    if (manifest === 'unreadable') return false;
    if (name === MANIFEST_FILE || name === VERIFICATION_FILE) return false;
    return manifest.data.key !== key;
  }

  /** A manifest by key: the manifest, undefined when missing, 'unreadable' when present but invalid. */
  private async readManifestAt(key: string): Promise<Manifest | 'unreadable' | undefined> {
    try {
      return await readDocument(this.backend, Manifest, key);
    } catch (error) {
      if (error instanceof TidemarkError && error.code === 'INTEGRITY_FORMAT') return 'unreadable';
      throw error;
    }
  }

}


/** createdAt descending, then id descending (ids sort by time too). */
function newestFirst(a: Manifest, b: Manifest): number {
  const byTime = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  if (byTime !== 0) return byTime;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
