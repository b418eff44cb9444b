import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { TidemarkError } from '@tidemark/contracts';
import { createLogger } from '@tidemark/runtime';
import { freePort, startPostgres } from '@tidemark/testkit';
import { openPgCluster } from '../src/index.js';

const quietLogger = () => createLogger('test', { TIDEMARK_LOG_LEVEL: 'warn' }, new Writable({ write: (_c, _e, done) => done() }));

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return error instanceof TidemarkError ? error.code : String(error);
  }
}

describe('a PostgreSQL server behind a breaker', () => {
  it('fails fast with BREAKER_OPEN once the server has been unreachable repeatedly', async () => {
    const port = await freePort(); // nothing listens here
    const cluster = openPgCluster({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' }, 'source', quietLogger());
    const codes: string[] = [];
    for (let i = 0; i < 7; i++) codes.push(await codeOf(cluster.databaseExists('app')));
    expect(codes.slice(0, 5)).toEqual(Array(5).fill('SOURCE_UNAVAILABLE'));
    expect(codes.at(-1)).toBe('BREAKER_OPEN');
    expect(cluster.breakerState()).toBe('open');
  });

  it('does not count answers such as a refused password against the server', async () => {
    const pg = await startPostgres();
    try {
      const cluster = openPgCluster({ host: pg.host, port: pg.port, user: pg.user, database: 'postgres', passwordEnv: 'WRONG' }, 'source', quietLogger(), { WRONG: 'not-the-password' });
      for (let i = 0; i < 7; i++) expect(await codeOf(cluster.databaseExists('postgres'))).toBe('SOURCE_AUTH_FAILED');
      expect(cluster.breakerState()).toBe('closed');
    } finally {
      await pg.stop();
    }
  });
});
