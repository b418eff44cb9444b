export type { StorageBackend, ObjectInfo, SaveOptions, ByteRange, BackendProperties } from './backend.js';
export { createFsBackend, type FsBackendConfig } from './fs-backend.js';
export { createS3Backend, partSizeFor, type S3BackendConfig } from './s3-backend.js';
export { createBackend, type StorageConfig } from './config.js';
export { guardBackend, type Guard } from './guard.js';
export { artifactKeys, newArtifactId, parseArtifactKey, ARTIFACT_ROOTS, MANIFEST_FILE, VERIFICATION_FILE, type ArtifactKeyParts } from './keys.js';
export { ArtifactStore, type OrphanSweepResult } from './artifact-store.js';
export { createMemoryBackend } from './memory-backend.js';
export { readAll } from './streams.js';
