// The benchmarks' RAG-shaped database: `documents` (~1 KiB text bodies) and `embeddings`
// (pgvector `vector(768)`, ~3 KiB a row), each holding about half of the requested size. Shared
// so that every pg benchmark measures the same data.

const fmt = (ms) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Creates `database` on a testkit PostgresServer (which must have pgvector) and fills it to about
 * `gib` GiB, then VACUUM ANALYZE. Prints one line when done; returns the sizes.
 */
export async function buildRagDatabase(pg, { gib, database = 'bench' }) {
  console.log(`# building a ~${gib} GiB database (documents + vector(768) embeddings)…`);
  const started = performance.now();
  await pg.createDatabase(database);
  await pg.query('CREATE EXTENSION vector', [], database);
  await pg.query('CREATE TABLE documents (id bigint PRIMARY KEY, title text, body text)', [], database);
  await pg.query('CREATE TABLE embeddings (id bigint PRIMARY KEY, embedding vector(768))', [], database);
  // 768 floats ≈ 3 KiB per row on disk; bodies ≈ 1 KiB. Half the bytes in each table.
  const bytes = gib * 1024 ** 3;
  const embeddingRows = Math.ceil(bytes / 2 / 3100);
  const documentRows = Math.ceil(bytes / 2 / 1100);
  await pg.query(
    `INSERT INTO documents SELECT i, 'document ' || i, repeat(md5(i::text) || md5((i+1)::text), 16) FROM generate_series(1, $1) i`,
    [documentRows],
    database,
  );
  // In batches, so one statement never holds all the random vectors at once.
  for (let start = 1; start <= embeddingRows; start += 20000) {
    await pg.query(
      `INSERT INTO embeddings SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 768) WHERE i > 0)::vector FROM generate_series($1::bigint, $2::bigint) i`,
      [start, Math.min(embeddingRows, start + 19999)],
      database,
    );
  }
  await pg.query('VACUUM ANALYZE', [], database);
  const [{ size }] = await pg.query(`SELECT pg_database_size($1)::bigint AS size`, [database], database);
  const sizeBytes = Number(size);
  const buildMs = performance.now() - started;
  console.log(`# database size ${(sizeBytes / 1024 ** 3).toFixed(2)} GiB (${documentRows} documents, ${embeddingRows} embeddings) built in ${fmt(buildMs)}`);
  return { sizeBytes, documentRows, embeddingRows, buildMs };
}
