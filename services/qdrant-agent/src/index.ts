export { handleBackupRequested } from './handlers/backup-requested.js';
export { collectionArtifactId, type BackupDeps } from './backup/collections.js';
export { handleRestoreRequested } from './handlers/restore-requested.js';
export { pickArtifact, type RestoreDeps } from './restore/collection.js';
export type { AgentDeps } from './agent-deps.js';
