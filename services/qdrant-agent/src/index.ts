export { handleBackupRequested, collectionArtifactId, type BackupDeps } from './handlers/backup-requested.js';
export { handleRestoreRequested, pickArtifact, type RestoreDeps } from './handlers/restore-requested.js';
export type { AgentDeps } from './handlers/common.js';
