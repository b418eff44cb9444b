export { handleBackupRequested } from './handlers/backup-requested.js';
export { PG_DUMP_FORMAT, type BackupDeps } from './backup/take-backup.js';
export { handleRestoreRequested, type RestoreDeps } from './handlers/restore-requested.js';
export { pickArtifact } from './restore/logical.js';
