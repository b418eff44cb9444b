import type { StorageBackend } from './backend.js';
/** An in-memory backend for unit tests of handlers (passes the same conformance suite). */
export declare function createMemoryBackend(): StorageBackend;
