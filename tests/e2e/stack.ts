// Starts a whole Tidemark deployment on real local servers for the end-to-end suites: NATS with
// JetStream, PostgreSQL 15 with pgvector (source and verification sandbox), an S3 endpoint or a
// filesystem store, and every service as its own child process (so a test can SIGKILL one).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { EVENTS_STREAM, decode } from '@tidemark/contracts';
import { ARTIFACT_ROOTS, artifactKeys, createBackend, type ArtifactStore, type StorageBackend } from '@tidemark/storage';
import { loadConfig, storageConfig } from '@tidemark/config';
import {
  eventually, freePort, storedMessages, startLocalS3, startNats, startPostgres, startQdrant, startRgw, startS3,
  type LocalS3Endpoint, type NatsTestServer, type PostgresServer, type QdrantTestServer, type S3Endpoint,
} from '@tidemark/testkit';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const SERVICES = ['scheduler', 'pg-agent', 'qdrant-agent', 'files-agent', 'storage', 'verifier', 'alerter'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface StackOptions {
  readonly storage: 'fs' | 's3';
  /** Which S3 server `storage: 's3'` runs on: s3rver (the default, faster) or Ceph RGW (a real S3). */
  readonly s3Server?: S3ServerKind;
  /** The S3 server is a local process the test can freeze and halt (see localS3()), whatever TIDEMARK_TEST_PROVIDER says. */
  readonly localS3?: boolean;
  /** storage.requestTimeoutSeconds and storage.stallSeconds for `storage: 's3'` (60 s each by default). */
  readonly s3Timeouts?: { readonly requestTimeoutSeconds: number; readonly stallSeconds: number };
  /** The config's `consumers:` section; without it the config's defaults, with maxDeliver 3. */
  readonly consumers?: { readonly maxDeliver: number; readonly backoff: { readonly initialSeconds: number; readonly maxSeconds: number } };
  readonly encrypt: boolean;
  /** Extra YAML for the `main` target's schedules (already indented list items), if any. */
  readonly schedules?: string;
  readonly webhookUrl?: string;
  /** Services started by `start()`; default all. */
  readonly services?: readonly ServiceName[];
  readonly ackWaitMs?: number;
  /** Adds a Qdrant target `vectors` (a Qdrant test double) and a second double as the verifier's sandbox. */
  readonly qdrant?: boolean;
  /** Continuous WAL archiving for the `main` target (point-in-time recovery). */
  readonly wal?: { readonly partialIntervalSeconds: number; readonly archiveCheckIntervalSeconds: number };
  /** Base backups are taken and verified (the verifier starts them as the postgres OS user, below the stack's directory); implied by `wal`. */
  readonly baseBackups?: boolean;
  /** The config's consumer backoff (default: the config's, 2 s doubling to 60 s); TIDEMARK_MAX_DELIVER is 3. */
  readonly backoff?: { readonly initialSeconds: number; readonly maxSeconds: number };
}

export type S3ServerKind = 's3rver' | 'rgw';
/** The bucket of a stack on S3. */
export const STACK_BUCKET = 'tidemark-e2e';

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly healthPort: number;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ObservedEvent {
  readonly subject: string;
  readonly data: Record<string, unknown>;
}

export class Stack {
  readonly processes: ServiceProcess[] = [];
  readonly events: ObservedEvent[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly options: StackOptions,
    readonly dir: string,
    readonly configPath: string,
    readonly storageRoot: string,
    readonly env: NodeJS.ProcessEnv,
    readonly nc: NatsConnection,
    readonly nats: NatsTestServer,
    readonly pg: PostgresServer,
    private readonly stops: Array<() => Promise<void>>,
    readonly s3?: S3Endpoint,
    readonly qdrant?: QdrantTestServer,
    readonly qdrantSandbox?: QdrantTestServer,
  ) {}

  static async start(options: StackOptions): Promise<Stack> {
    const stops: Array<() => Promise<void>> = [];
    const dir = await mkdtemp(join(tmpdir(), 'tidemark-e2e-'));
    const physical = options.wal !== undefined || options.baseBackups === true;
    // The WAL spool and restored data directories under it belong to the postgres OS user, which must get through.
    if (physical) await chmod(dir, 0o755);
    const nats = await startNats();
    stops.push(() => nats.stop());
    // Physical backups and point-in-time recovery need torn-page protection (the test default is off).
    const pg = await startPostgres({ pgvector: true, ...(physical ? { settings: { full_page_writes: 'on' } } : {}) });
    stops.push(() => pg.stop());
    const storageRoot = join(dir, 'storage');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TIDEMARK_NATS_URL: nats.url,
      TIDEMARK_LOG_LEVEL: 'debug',
      TIDEMARK_ACK_WAIT_MS: String(options.ackWaitMs ?? 10_000),
      TIDEMARK_MAX_DELIVER: String(options.consumers?.maxDeliver ?? 3),
      PG_MAIN_PASSWORD: pg.password,
      TIDEMARK_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    };
    let storageYaml = `storage:\n  type: fs\n  root: ${storageRoot}\n  orphanGraceMinutes: 0\n`;
    let s3: S3Endpoint | undefined;
    if (options.storage === 's3') {
      const started = options.s3Server === 'rgw' ? await startRgw() : options.localS3 ? await startLocalS3() : await startS3();
      s3 = started;
      stops.push(() => started.stop());
      env.TIDEMARK_S3_ACCESS_KEY = started.accessKey;
      env.TIDEMARK_S3_SECRET_KEY = started.secretKey;
      storageYaml = `storage:\n  type: s3\n  endpoint: ${started.endpoint}\n  bucket: ${STACK_BUCKET}\n  region: ${started.region}\n  orphanGraceMinutes: 0\n`;
      if (options.s3Timeouts) storageYaml += `  requestTimeoutSeconds: ${options.s3Timeouts.requestTimeoutSeconds}\n  stallSeconds: ${options.s3Timeouts.stallSeconds}\n`;
    }
    let qdrant: QdrantTestServer | undefined;
    let qdrantSandbox: QdrantTestServer | undefined;
    if (options.qdrant) {
      qdrant = await startQdrant();
      stops.push(() => qdrant!.stop());
      qdrantSandbox = await startQdrant();
      stops.push(() => qdrantSandbox!.stop());
    }
    const conn = (db: string) =>
      `    host: ${pg.host}\n    port: ${pg.port}\n    user: ${pg.user}\n    database: ${db}\n    passwordEnv: PG_MAIN_PASSWORD\n`;
    const yaml = [
      `nats:\n  url: ${nats.url}\n`,
      storageYaml,
      // JSON is YAML.
      options.consumers ? `consumers: ${JSON.stringify(options.consumers)}\n` : '',
      options.encrypt ? `encryption:\n  keyEnv: TIDEMARK_ENCRYPTION_KEY\n  keyId: e2e-key\n` : '',
      `defaults:\n  compression: zstd\n  encrypt: ${options.encrypt}\n  verify: true\n`,
      `sandbox:\n  postgres:\n${conn('postgres').replaceAll('    ', '      ')}`,
      qdrantSandbox ? `  qdrant:\n    url: ${qdrantSandbox.url}\n` : '',
      `alerts:\n  dedupeWindowMinutes: 60\n  watchdogIntervalSeconds: 3600\n`,
      options.webhookUrl ? `  webhooks:\n    - url: ${options.webhookUrl}\n      minSeverity: warning\n` : '',
      `retention:\n  intervalSeconds: 3600\n`,
      options.backoff ? `consumers:\n  backoff:\n    initialSeconds: ${options.backoff.initialSeconds}\n    maxSeconds: ${options.backoff.maxSeconds}\n` : '',
      options.wal ? `pg:\n  workDir: ${join(dir, 'pg')}\n  archiveCheckIntervalSeconds: ${options.wal.archiveCheckIntervalSeconds}\n` : '',
      `targets:\n  - name: main\n    engine: pg\n    postgres:\n${conn('app').replaceAll('    ', '      ')}`,
      options.schedules ? `    schedules:\n${options.schedules}` : '',
      options.wal ? `    wal:\n      enabled: true\n      partialIntervalSeconds: ${options.wal.partialIntervalSeconds}\n` : '',
      qdrant ? `  - name: vectors\n    engine: qdrant\n    qdrant:\n      url: ${qdrant.url}\n      timeoutMs: 2000\n      incrementalField: updatedAt\n` : '',
    ].join('');
    const configPath = join(dir, 'tidemark.yaml');
    await writeFile(configPath, yaml);
    env.TIDEMARK_CONFIG = configPath;
    // Through a restarted nats-server too, and back as soon as the services are, so that it misses as little as it can.
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    stops.push(() => nc.close());
    const stack = new Stack(options, dir, configPath, storageRoot, env, nc, nats, pg, stops, s3, qdrant, qdrantSandbox);
    stack.observe();
    stops.push(() => rm(dir, { recursive: true, force: true }));
    return stack;
  }

  /** The S3 server with its fault controls (a stack started with `localS3: true`). */
  localS3(): LocalS3Endpoint {
    const s3 = this.s3;
    if (s3 === undefined || !('halt' in s3)) throw new Error('this stack has no local S3 server: start it with storage: s3 and localS3: true');
    return s3 as LocalS3Endpoint;
  }

  /** Records every Tidemark event and alert (core subscription: sees what JetStream stores too). */
  private observe(): void {
    const subjects = ['backup.*.*.*', 'artifact.*.*.*', 'verify.*.*.*', 'restore.*.*.*', 'wal.*.*.*', 'alert.>', 'command.rejected'];
    for (const subject of subjects) {
      const sub: Subscription = this.nc.subscribe(subject);
      void (async () => {
        for await (const msg of sub) {
          // Commands share the `backup.*.*.*` shape; only events are recorded.
          if (msg.subject.includes('.requested.')) continue;
          this.events.push({ subject: msg.subject, data: decode(msg.data, msg.headers) as Record<string, unknown> });
          const waiters = this.waiters;
          this.waiters = [];
          waiters.forEach((w) => w());
        }
      })();
    }
  }

  /** Waits for an event whose subject starts with `prefix` and that satisfies `match`. */
  async waitFor(prefix: string, match: (e: ObservedEvent) => boolean = () => true, timeoutMs = 60_000): Promise<ObservedEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find((e) => e.subject.startsWith(prefix) && match(e));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.events.map((e) => e.subject).join(', ');
        throw new Error(`timed out waiting for ${prefix}; saw: ${seen}\n--- service output ---\n${this.processes.map((p) => `[${p.name}]\n${p.output().slice(-4000)}`).join('\n')}`);
      }
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolveWait();
        });
      });
    }
  }

  /**
   * The events the events stream holds (the audit history) on `subject` (wildcards allowed) that
   * satisfy `match`: what counting "exactly one" needs, since a core subscriber may miss an event
   * around a nats outage and sees a de-duplicated repeat that the stream drops.
   */
  async storedEvents(subject: string, match: (e: ObservedEvent) => boolean = () => true): Promise<ObservedEvent[]> {
    const messages = await storedMessages(await this.nc.jetstreamManager(), EVENTS_STREAM.name, subject);
    return messages.map((m) => ({ subject: m.subject, data: m.body as Record<string, unknown> })).filter(match);
  }

  /** Waits for the first stored event on `subject` that satisfies `match`. */
  async waitForStored(subject: string, match: (e: ObservedEvent) => boolean, timeoutMs = 180_000): Promise<ObservedEvent> {
    // Right after a nats restart, JetStream may not answer yet: ask again.
    return eventually(async () => (await this.storedEvents(subject, match).catch(() => []))[0], timeoutMs, `an event on ${subject} in the events stream`);
  }

  /** Once a consumer has nothing pending and nothing unacknowledged, no further delivery (and no duplicate) can come. */
  async settled(stream: string, durable: string, timeoutMs = 60_000): Promise<void> {
    const jsm = await this.nc.jetstreamManager();
    await eventually(async () => {
      const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
      return info?.num_pending === 0 && info.num_ack_pending === 0;
    }, timeoutMs, `${durable} to have nothing pending`);
  }

  /** Whether the filesystem store has bytes of an upload in flight (its `.tmp/`, never listed): a backup is being stored. */
  async uploadInFlight(): Promise<boolean> {
    const tmp = join(this.storageRoot, '.tmp');
    for (const name of await readdir(tmp).catch(() => [])) {
      if ((await stat(join(tmp, name)).catch(() => undefined))?.size) return true;
    }
    return false;
  }

  async startService(name: ServiceName, extraEnv: NodeJS.ProcessEnv = {}): Promise<ServiceProcess> {
    const healthPort = await freePort();
    const child = spawn(process.execPath, [join(REPO_ROOT, 'services', name, 'dist', 'main.js')], {
      env: { ...this.env, TIDEMARK_HEALTH_PORT: String(healthPort), TIDEMARK_INSTANCE_ID: `${name}-${healthPort}`, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const proc: ServiceProcess = {
      name,
      child,
      healthPort,
      output: () => out,
      kill: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      },
    };
    this.processes.push(proc);
    await waitHealthy(proc);
    return proc;
  }

  /** Starts `names` one after another, each once it is healthy; the map lets a test kill and restart them. */
  async startServices(names: readonly ServiceName[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Map<ServiceName, ServiceProcess>> {
    const running = new Map<ServiceName, ServiceProcess>();
    for (const name of names) running.set(name, await this.startService(name, extraEnv));
    return running;
  }

  /** The bucket the services write, opened as they open it (closed with the stack), for a test to inspect. */
  async openBackend(): Promise<StorageBackend> {
    const backend = await createBackend(storageConfig(loadConfig({ ...this.env }).config, this.env));
    this.stops.push(() => backend.close());
    return backend;
  }

  async startAll(): Promise<void> {
    for (const name of this.options.services ?? SERVICES) await this.startService(name);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.kill('SIGTERM')));
    for (const stop of this.stops.reverse()) await stop().catch(() => undefined);
  }
}

async function waitHealthy(proc: ServiceProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited with ${proc.child.exitCode}:\n${proc.output()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${proc.healthPort}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${proc.name} did not become healthy:\n${proc.output()}`);
}

/** A small RAG-like source database: documents and their pgvector embeddings. */
export async function seedSourceDatabase(pg: PostgresServer, rows = 2000): Promise<void> {
  await pg.createDatabase('app');
  await pg.query('CREATE EXTENSION IF NOT EXISTS vector', [], 'app');
  await pg.query('CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text, created_at timestamptz DEFAULT now())', [], 'app');
  await pg.query('CREATE TABLE embeddings (id int PRIMARY KEY, document_id int REFERENCES documents(id), embedding vector(8))', [], 'app');
  await pg.query(
    `INSERT INTO documents (title, body) SELECT 'doc ' || i, repeat(md5(i::text), 8) FROM generate_series(1, $1) i`,
    [rows],
    'app',
  );
  await pg.query(
    `INSERT INTO embeddings SELECT i, i, ('[' || array_to_string(ARRAY(SELECT round(sin(i * k)::numeric, 4) FROM generate_series(1, 8) k), ',') || ']')::vector FROM generate_series(1, $1) i`,
    [rows],
    'app',
  );
  await pg.query('CREATE INDEX ON embeddings USING hnsw (embedding vector_l2_ops)', [], 'app');
}

/** A six-field cron that fires once, `seconds` from now (UTC). */
export function cronInSeconds(seconds: number): string {
  const t = new Date(Date.now() + seconds * 1000);
  return `${t.getUTCSeconds()} ${t.getUTCMinutes()} ${t.getUTCHours()} * * *`;
}

/**
 * Objects in the bucket that no committed manifest accounts for (a data object of a failed or
 * unfinished attempt, a stray file), and what the filesystem store still holds in `.tmp/`: a
 * half-visible artifact shows up here.
 */
export async function uncommittedObjects(store: ArtifactStore, storageRoot?: string): Promise<string[]> {
  const committed = new Set<string>();
  for (const manifest of await store.listManifests()) {
    const keys = artifactKeys(manifest.engine, manifest.target, manifest.id);
    [keys.manifest, keys.verification, manifest.data.key].forEach((key) => committed.add(key));
  }
  const stray: string[] = [];
  for await (const object of store.backend.list(ARTIFACT_ROOTS.artifacts)) if (!committed.has(object.key)) stray.push(object.key);
  if (storageRoot !== undefined) stray.push(...(await readdir(join(storageRoot, '.tmp')).catch(() => [])).map((name) => `.tmp/${name}`));
  return stray;
}
