// A small RAG-like database for the integration suites: a vector table with an HNSW index,
// a table referencing it, and a table without a primary key in another schema.
import type { PostgresServer } from '@tidemark/testkit';

export const FIXTURE_ROWS = { 'audit.events': 20, 'public.items': 1000, 'public.notes': 500 } as const;

export async function createFixtureDatabase(server: PostgresServer, database: string): Promise<void> {
  await server.createDatabase(database);
  const statements = [
    'CREATE EXTENSION vector',
    `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, embedding vector(3), created timestamptz, price numeric, score float8)`,
    `INSERT INTO items SELECT g, 'item ' || g,
       CASE WHEN g % 50 = 0 THEN NULL ELSE ARRAY[sin(g), cos(g), (g % 7) / 7.0]::vector END,
       '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 hour', g * 1.5, g / 3.0
     FROM generate_series(1, 1000) g`,
    'CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_l2_ops)',
    `CREATE TABLE notes (id bigserial PRIMARY KEY, item_id int REFERENCES items(id), body text, tags text[], meta jsonb)`,
    `INSERT INTO notes (item_id, body, tags, meta) SELECT (g % 1000) + 1, md5(g::text), ARRAY['a', 'b'], jsonb_build_object('g', g) FROM generate_series(1, 500) g`,
    'CREATE SCHEMA audit',
    'CREATE TABLE audit.events (at timestamptz, what text)',
    `INSERT INTO audit.events SELECT '2024-06-01T00:00:00Z'::timestamptz + g * interval '1 minute', 'event ' || g FROM generate_series(1, 20) g`,
  ];
  for (const sql of statements) await server.query(sql, [], database);
}

export const pgConfigYaml = (server: PostgresServer, database: string, passwordEnv: string, extra = '') => `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - name: main
    engine: pg
    postgres: { host: ${server.host}, port: ${server.port}, user: ${server.user}, database: ${database}, passwordEnv: ${passwordEnv} }
${extra}`;
