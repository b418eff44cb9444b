export { handleArtifactStored, scratchDatabaseName, scratchCollectionName, type VerifierDeps } from './handlers/artifact-stored.js';
export { compareFacts, probeKOf } from './compare.js';
export { verifyQdrantArtifact, qdrantFactsOf, sandboxPort, type QdrantVerifyDeps, type QdrantVerifyProgress } from './qdrant-verify.js';
