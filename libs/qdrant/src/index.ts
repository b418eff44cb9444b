// Qdrant building blocks shared by the qdrant-agent (backup, restore) and the verifier (restore, compare), free of NATS.
export * from './port.js';
export { mapQdrantError } from './errors.js';
export { guardPort, type GuardedPort, type GuardOptions } from './guard.js';
export { createQdrantPort, type QdrantConnection } from './client-adapter.js';
export { compareIds, idKey, canonicalJson, hashSample, type SampleHashes } from './canonical.js';
export {
  collectFacts, compareWithFacts, qdrantFactsOf, vectorFacts, shardingFacts, samplePoints, recordProbes, SINGLE_NODE_COVERAGE, EXPORT_COVERAGE,
  type FactsOptions, type FingerprintCheck,
} from './facts.js';
export {
  EXPORT_FORMAT, EXPORT_FORMAT_VERSION, exportCollection, readExport, encodeIdSet, decodeIdSet, scrollPages,
  type ExportHeader, type ExportTrailer, type ExportRecord, type ExportOptions, type ExportStream,
} from './export-format.js';
export { exportDelta, readIdSet, chainApplyOrder, changedSince, type DeltaOptions, type ChainLink } from './incremental.js';
export { snapshotCollection, assertSnapshotCoverage, checksumTap, SNAPSHOT_FORMAT, type SnapshotOptions, type SnapshotOutcome } from './snapshot.js';
export { restoreChain, promoteRestored, rollbackSwitch, createBodyFromConfig, stagingName, type RestoreOptions, type RestoreOutcome } from './restore.js';
