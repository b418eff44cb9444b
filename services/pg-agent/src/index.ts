export { handleBackupRequested, PG_DUMP_FORMAT, type BackupDeps } from './handlers/backup-requested.js';
export { handleRestoreRequested, pickArtifact, type RestoreDeps } from './handlers/restore-requested.js';
