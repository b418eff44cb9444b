// The test harness every integration suite uses: real PostgreSQL, NATS and S3 servers,
// started as local processes or (TIDEMARK_TEST_PROVIDER=containers) as containers.
// containers.ts imports testcontainers only inside its starters, so local runs never load it.
export * from './ports.js';
export * from './tmp.js';
export * from './process.js';
export * from './provider.js';
export * from './postgres.js';
export * from './containers.js';
export * from './nats.js';
export * from './s3.js';
export * from './rgw.js';
export * from './qdrant.js';
export * from './handler-fakes.js';
export * from './files-fixtures.js';
// In-memory ports shared by tests of several packages: tests share fakes only through here.
export * from './fake-pg-cluster.js';
export * from './fake-qdrant-port.js';
export * from './qdrant-fixture.js';
export * from './wait.js';
// Realistic file trees (seeded) for the files engine's tests and benchmark.
export * from './trees.js';
