export { handleArtifactStored, scratchDatabaseName, type VerifierDeps } from './handlers/artifact-stored.js';
export { compareFacts, probeKOf } from './compare.js';
