export { handleArtifactStored, scratchDatabaseName, scratchCollectionName, type VerifierDeps } from './handlers/artifact-stored.js';
export { compareFacts, compareBaseFacts, probeKOf } from './compare.js';
export { verifyQdrantArtifact, sandboxPort, type QdrantVerifyDeps, type QdrantVerifyProgress } from './qdrant-verify.js';
export { verifyPgBaseArtifact, requireServerBinaries, type PgBaseVerifySettings, type PgBaseVerifyDeps, type PgBaseVerifyProgress } from './pg-base-verify.js';
export { scratchDatabaseClaims, claimScratchDirectory, releaseScratchDirectory, sweepScratchDirectories, SCRATCH_PREFIX, type ScratchDatabaseClaims } from './scratch.js';
export { verifyFilesArtifact, filesScratchRoot, type FilesVerifyDeps, type FilesVerifyProgress } from './files-verify.js';
