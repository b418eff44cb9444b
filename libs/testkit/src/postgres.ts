// A throwaway PostgreSQL 15 cluster per call, for integration tests that must run against the
// real server: initdb into a temp dir, a random superuser password with scram-sha-256 (so tests
// pass real credentials, e.g. via PGPASSWORD), a free loopback port, durability off for speed.
// With TIDEMARK_TEST_PROVIDER=containers the same interface is backed by a container instead.
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { runProcess, startProcess, waitForPort, type StartedProcess } from './process.js';
import { testProvider } from './provider.js';
import { makeTempDir, removeTempDir } from './tmp.js';
import { postgresClient, randomPassword, withPgvectorChecked, type PostgresServer, type StartPostgresOptions } from './postgres-client.js';

// The client half lives apart so the container provider can share it without importing this file back.
export * from './postgres-client.js';

/** Where initdb and postgres live; TIDEMARK_PG_BINDIR overrides. */
export const POSTGRES_BIN_DIR = process.env['TIDEMARK_PG_BINDIR'] ?? '/usr/lib/postgresql/15/bin';
/** The OS user servers run as when the tests run as root (postgres refuses to run as root). */
export const POSTGRES_OS_USER = process.env['TIDEMARK_PG_OS_USER'] ?? 'postgres';

const SUPERUSER = 'postgres';
const READY_LINE = /database system is ready to accept connections/;
const READY_TIMEOUT_MS = 60_000;

/** Settings that trade durability for speed: a crashed test cluster is thrown away anyway. */
const TEST_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  max_connections: '50',
  shared_buffers: '32MB',
  log_min_messages: 'warning',
  log_checkpoints: 'off',
};

/** Starts a PostgreSQL 15 server: a local throwaway cluster, or a container with TIDEMARK_TEST_PROVIDER=containers. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  if (testProvider() === 'containers') {
    const { containerPostgres } = await import('./containers.js');
    return containerPostgres(options);
  }
  return startLocalPostgres(options);
}

interface OsUser {
  readonly uid: number;
  readonly gid: number;
}

/** The uid/gid to run the server as: none when not root, the postgres user when root. */
async function serverOwner(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === POSTGRES_OS_USER && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(
    `the ${POSTGRES_OS_USER} os user does not exist, and postgres will not run as root: install postgresql-15 (it creates the user) or set TIDEMARK_PG_OS_USER`,
  );
}

/** The environment for initdb and postgres: ours, less libpq variables that could redirect them. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env['LC_ALL'] = 'C';
  env['TZ'] = 'UTC';
  return env;
}

async function startLocalPostgres(options: StartPostgresOptions): Promise<PostgresServer> {
  const initdb = join(POSTGRES_BIN_DIR, 'initdb');
  const postgres = join(POSTGRES_BIN_DIR, 'postgres');
  if (!existsSync(initdb) || !existsSync(postgres)) {
    throw new Error(
      `postgresql 15 server binaries were not found in ${POSTGRES_BIN_DIR}: apt-get install postgresql-15, or set TIDEMARK_PG_BINDIR`,
    );
  }
  const owner = await serverOwner();
  const asOwner = owner === undefined ? {} : { uid: owner.uid, gid: owner.gid };
  const env = serverEnv();
  const password = randomPassword();
  const host = '127.0.0.1';

  const root = await makeTempDir('tidemark-pg-');
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'socket');
  let running: StartedProcess | undefined;

  const launch = async (port: number): Promise<StartedProcess> => {
    const settings = { ...TEST_SETTINGS, ...options.settings, listen_addresses: host };
    const args = ['-D', dataDir, '-p', String(port), '-k', socketDir];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const child = startProcess(postgres, args, { name: 'postgres', cwd: root, env, ...asOwner });
    try {
      await child.waitForOutput(READY_LINE, READY_TIMEOUT_MS);
      await waitForPort(port, { host, process: child, timeoutMs: READY_TIMEOUT_MS });
      return child;
    } catch (error) {
      await child.stop({ signal: 'SIGKILL' });
      throw error;
    }
  };

  let port = 0;
  try {
    const pwfile = join(root, 'pwfile');
    await mkdir(socketDir, { mode: 0o700 });
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner !== undefined) {
      for (const path of [root, socketDir, pwfile]) await chown(path, owner.uid, owner.gid);
    }
    await runProcess(
      initdb,
      ['-D', dataDir, '-U', SUPERUSER, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      { name: 'initdb', cwd: root, env, ...asOwner, timeoutMs: 120_000 },
    );
    await rm(pwfile, { force: true });

    // freePort releases the port before postgres binds it; on the rare lost race, try another.
    for (let attempt = 1; running === undefined; attempt += 1) {
      port = await freePort(host);
      try {
        running = await launch(port);
      } catch (error) {
        const lostRace = error instanceof Error && /could not (bind|create listen socket)/i.test(error.message);
        if (!lostRace || attempt >= 3) throw error;
      }
    }
  } catch (error) {
    await running?.stop({ signal: 'SIGKILL' });
    await removeTempDir(root);
    throw error;
  }

  const client = postgresClient(() => ({ host, port }), SUPERUSER, password);
  let stopped = false;
  const server: PostgresServer = {
    host,
    port,
    user: SUPERUSER,
    password,
    dataDir,
    ...client,
    async stop() {
      if (stopped) return;
      stopped = true;
      await client.closeAll();
      // SIGINT is postgres's fast shutdown: it does not wait for clients to disconnect.
      await running?.stop({ signal: 'SIGINT', timeoutMs: 10_000 });
      await removeTempDir(root);
    },
    async restart(whileDown) {
      if (stopped) throw new Error('the postgres test server was stopped; start a new one instead of restarting it');
      await client.closeAll();
      await running?.stop({ signal: 'SIGINT', timeoutMs: 10_000 });
      running = undefined;
      try {
        await whileDown?.();
      } finally {
        running = await launch(port);
      }
    },
  };

  return withPgvectorChecked(server, options);
}
