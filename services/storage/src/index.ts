export { Catalog, type CatalogSource, type CatalogRecord, type CatalogFilter } from './catalog/catalog.js';
export { toCatalogEntry, verificationStatus, newestFirst, targetKey, VERIFICATION_STATUSES, type CatalogEntry, type VerificationStatus } from './catalog/entry.js';
export { handleArtifactEvent } from './handlers/catalog-events.js';
export { listArtifacts, describeArtifact, DEFAULT_LIST_LIMIT, type CatalogListReply, type CatalogDescribeReply, type ErrorReply } from './handlers/catalog-requests.js';
export { serveCatalog, CATALOG_QUEUE_GROUP } from './handlers/serve-catalog.js';
export { decodeRequest, encodeReply, requestEncoding, type WireEncoding } from './handlers/wire.js';
export { planRetention, explainRetention, isoWeek, DEFAULT_UNVERIFIED_GRACE_MS, type RetentionPolicy, type PruneDecision, type RetentionVerdict, type PlanOptions } from './retention/plan.js';
export { retentionPolicies } from './retention/policies.js';
export { runRetention, type RetentionDeps, type RetentionResult } from './retention/run.js';
export { startPeriodic, type PeriodicTask } from './retention/loop.js';
export { startStorageService, type StorageService, type StorageServiceDeps } from './service.js';
export { retentionFamily } from './retention/plan.js';
export { planWalRetention, type WalRetentionInput, type WalRetentionPlan, type WalRemoval, type ClusterRetention, type ClusterRule } from './retention/wal-plan.js';
export { pruneWal, sweepWalOrphans, type WalRetentionDeps, type WalRetentionResult, type WalOrphanSweepResult } from './retention/wal-run.js';
export { indexArchive, timelineChain, type WalListing, type ClusterArchive, type ChainLink, type TimelineChain } from './wal/archive-index.js';
export {
  planArchiveCheck, clusterToCheck, historyToRead, DEFAULT_SETTLE_MS, DEFAULT_FOLLOW_GRACE_MS, MAX_LISTED_MISSING,
  type ArchiveCheckInput, type ArchiveCheckPlan, type ArchiveFinding, type ArchiveProblem, type BaseBackupStart,
} from './wal/check.js';
export { ArchiveChecker, baseBackupStarts, problemMsgId, type ArchiveCheckDeps, type TargetCheckResult } from './wal/check-run.js';
export { listWalObjects, type WalFileObjects } from './wal/objects.js';
export { summariseWalArchive } from './handlers/catalog-wal.js';
export { listSnapshotTree, normalisePath, toCatalogTreeEntry, DEFAULT_TREE_LIMIT, type CatalogTreeDeps } from './handlers/catalog-tree.js';
export { bucketTreeReader, isFilesSnapshot, type TreeReader } from './files/trees.js';
export { runChunkGc, describeReport, type ChunkGcDeps, type ChunkGcResult, type ChunkGcSettings } from './files/chunk-gc.js';
