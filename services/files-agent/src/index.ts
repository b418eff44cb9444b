export { handleBackupRequested } from './handlers/backup-requested.js';
export { treeArtifactId, completedProblems, type BackupDeps } from './backup/tree.js';
export { handleRestoreRequested } from './handlers/restore-requested.js';
export { checkedPaths, type RestoreDeps } from './restore/tree.js';
export type { AgentDeps } from './agent-deps.js';
