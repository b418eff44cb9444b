import pg from 'pg';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../src/index.js';

describe('startPostgres with pgvector', () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres({ pgvector: true });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('listens on loopback and describes itself for a config file', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.connection('app')).toEqual({ host: '127.0.0.1', port: server.port, user: server.user, database: 'app' });
    expect(server.url()).toContain(`@127.0.0.1:${server.port}/postgres`);
  });

  it('creates a database and stores and searches vectors in it', async () => {
    await server.createDatabase('vectors_app');
    await server.query('CREATE EXTENSION vector', [], 'vectors_app');
    await server.query('CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))', [], 'vectors_app');
    await server.query(
      `INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]')`,
      [],
      'vectors_app',
    );
    await server.query('CREATE INDEX ON items USING hnsw (embedding vector_l2_ops)', [], 'vectors_app');

    const nearest = await server.query<{ id: number }>(
      'SELECT id FROM items ORDER BY embedding <-> $1::vector LIMIT 2',
      ['[1,0,0]'],
      'vectors_app',
    );
    expect(nearest.map((row) => row.id)).toEqual([1, 3]);

    await server.dropDatabase('vectors_app');
    const left = await server.query(`SELECT 1 FROM pg_database WHERE datname = 'vectors_app'`);
    expect(left).toHaveLength(0);
  });

  it('accepts the generated password and refuses a wrong one', async () => {
    const connect = async (password: string) => {
      const client = new pg.Client({ ...server.connection(), password });
      try {
        await client.connect();
        return (await client.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    expect(await connect(server.password)).toBe(1);
    await expect(connect(`${server.password}-wrong`)).rejects.toThrow(/password authentication failed/);
  });

  it('keeps its data across a restart', async () => {
    await server.query('CREATE TABLE survives (note text)');
    await server.query(`INSERT INTO survives VALUES ('still here')`);
    await server.restart?.();
    const rows = await server.query<{ note: string }>('SELECT note FROM survives');
    expect(rows).toEqual([{ note: 'still here' }]);
  });
});

describe('stopping a postgres test server', () => {
  it('shuts the server down and removes its data dir', async () => {
    const server = await startPostgres();
    const { dataDir } = server;
    expect(existsSync(dataDir)).toBe(true);
    await server.stop();
    expect(existsSync(dataDir)).toBe(false);
    const client = new pg.Client({ ...server.connection(), password: server.password, connectionTimeoutMillis: 2000 });
    await expect(client.connect()).rejects.toThrow();
    await server.stop();
  });
});
