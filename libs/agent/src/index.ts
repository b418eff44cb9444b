// What the engine agents' handlers share (pg-agent, qdrant-agent; the verifier words its failures with failureOf).
export * from './agent-handlers.js';
