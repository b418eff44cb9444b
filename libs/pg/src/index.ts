// The PostgreSQL building blocks shared by pg-agent (dump, restore) and the verifier (restore, compare).
export { pgCluster, derivedDatabaseName, type PgCluster, type RestoreOptions, type DumpSession, type DumpOptions } from './cluster.js';
export { collectFacts, DEFAULT_PROBE_K, DETERMINISTIC_TEXT_SETTINGS, type Queryable, type FactsOptions } from './facts.js';
export { clientConfig, openClient, quoteIdent, toPgError, type ClusterRole } from './connection.js';
export { pgToolPath, spawnTool, toolEnvironment, type PgTool, type RunningTool } from './tools.js';
export { restoreArtifact } from './restore-artifact.js';
export { guardCluster, openPgCluster, type Fire } from './guard.js';
export * from './wal-receiver.js';
export { startBaseBackup, TarReader, type BaseBackupSession, type BaseBackupFacts, type BaseBackupOptions, type TarEntry, type TarVisitor } from './base-backup.js';
export { extractTar, verifyBaseBackup, startFromBaseBackup, type ExtractResult, type BaseBackupServer, type StartFromBaseBackupOptions } from './base-verify.js';
// Point-in-time recovery (pg-agent's physical restore).
export { AGENT_ACCESS_LINE, FALLBACK_HBA, prepareRecoveryDirectory, chownTree, type KeepSourceConfiguration, type RecoveryDirectoryOptions, type PreparedRecoveryDirectory } from './base-verify.js';
export * from './pitr.js';
export { BASE_BACKUP_FORMAT, baseBackupArgs, startTimeToIso, type BaseBackupThrottle, type ServerCompression } from './base-backup.js';
export { guardToolOutput, describeExit, type GuardedToolOutput, type ToolSettled, type ToolExit } from './tools.js';
export { baseFactsOf, startPgBaseBackup, watchDatabase, readWriteCounters, changedTablesBetween, DEFAULT_SETTLE_MS, type PgBaseBackupSession, type PgBaseBackupOptions, type DatabaseWatch, type WriteCounters } from './base-facts.js';
export { osUserIds } from './os-user.js';
export {
  maySearch, blockedDirectoriesAbove, describeBlocked, requireReachable, socketPathFits, pgSocketPath, MAX_SOCKET_PATH_BYTES,
  type OsUserIds, type DirectoryAccess, type BlockedDirectory, type ReachableRequirement,
} from './reachable.js';
export {
  readRestoredServerFacts, restoredServerChecks, tableRowCounts, withSocketClient, checkRestoredServer,
  type RestoredServerFacts, type RestoredServerExpectations, type RestoreCheckExpectations, type RestoreCheckResult,
} from './restored-server.js';
