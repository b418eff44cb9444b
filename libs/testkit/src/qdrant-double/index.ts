// The Qdrant test double: see README.md for the endpoints and fields it covers.
export { startQdrantDouble, type QdrantDouble, type QdrantDoubleOptions, type QdrantFaults, type RequestRecord } from './server.js';
export { QDRANT_VERSION } from './archive.js';
