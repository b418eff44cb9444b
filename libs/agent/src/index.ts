// What the engine agents' handlers share (pg-agent, qdrant-agent, files-agent; the verifier words its failures with failureOf and reads files snapshots with files-tree).
export * from './agent-handlers.js';
export * from './files-tree.js';
export * from './job-progress.js';
