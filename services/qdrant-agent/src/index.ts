// The Qdrant agent's domain logic, free of NATS (the handlers wire it to subjects).
export * from './qdrant/port.js';
export { mapQdrantError } from './qdrant/errors.js';
export { guardPort, type GuardedPort, type GuardOptions } from './qdrant/guard.js';
export { createQdrantPort, type QdrantConnection } from './qdrant/client-adapter.js';
export { compareIds, canonicalJson, hashSample, type SampleHashes } from './qdrant/canonical.js';
export {
  collectFacts, compareWithFacts, vectorFacts, shardingFacts, samplePoints, recordProbes, SINGLE_NODE_COVERAGE, EXPORT_COVERAGE,
  type FactsOptions, type FingerprintCheck,
} from './qdrant/facts.js';
export {
  EXPORT_FORMAT, EXPORT_FORMAT_VERSION, exportCollection, readExport, encodeIdSet, decodeIdSet, scrollPages,
  type ExportHeader, type ExportTrailer, type ExportRecord, type ExportOptions, type ExportStream,
} from './qdrant/export-format.js';
export { exportDelta, readIdSet, chainApplyOrder, changedSince, type DeltaOptions, type ChainLink } from './qdrant/incremental.js';
export { snapshotCollection, assertSnapshotCoverage, checksumTap, SNAPSHOT_FORMAT, type SnapshotOptions, type SnapshotOutcome } from './qdrant/snapshot.js';
export { restoreChain, promoteRestored, rollbackSwitch, createBodyFromConfig, stagingName, type RestoreOptions, type RestoreOutcome } from './qdrant/restore.js';
