// What the point-in-time restore suites share: a real PostgreSQL 15 source, base backups stored
// the way the base backup handler stores them (pg_basebackup tar → pipeline → ArtifactStore,
// manifest with PgBaseSourceFacts), and a WAL archive filled the way the WAL archiver fills it
// (closed segments from the source's pg_wal/ → pipeline → WalArchive), so these suites do not
// depend on either of those being finished. Reading pg_wal/ needs root (it is 0700 postgres).
import { readdir, readFile, chmod, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { MANIFEST_VERSION, type Manifest, type RestoreCompleted, type WalFileManifest } from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, WalArchive, newArtifactId, type StorageBackend } from '@tidemark/storage';
import { defaultCompression, encodeStream, type KeyRing } from '@tidemark/pipeline';
import { segmentNameForLsn, startPgBaseBackup, stopPostmaster } from '@tidemark/pg';
import { recordingPublisher, startPostgres, testContext, type PostgresServer, type RecordingPublisher } from '@tidemark/testkit';
import type { RestoreDeps } from '../src/handlers/restore-requested.js';

export const PASSWORD_ENV = 'TM_PITR_TEST_PASSWORD';
export const AGENT = { id: 'pitr-test-agent', version: '0.0.0' };

/** Settings for a source whose WAL can be archived and replayed. */
export const SOURCE_SETTINGS = { wal_level: 'replica', max_wal_senders: '4', full_page_writes: 'on', wal_keep_size: '1GB' };

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface PitrSource {
  readonly server: PostgresServer;
  readonly systemIdentifier: string;
  /** The temporary root (mode 0755: the postgres OS user must reach the restores under it). */
  readonly root: string;
  readonly workDir: string;
  /** Takes a base backup and commits it like the base backup handler does. */
  takeBaseBackup(requestId: string, key: KeyRing['current']): Promise<Manifest>;
  /** pg_switch_wal(), then archives every closed segment not archived yet; returns their names. */
  archiveWal(key: KeyRing['current']): Promise<string[]>;
  /**
   * Archives the segment being written now as `<segment>.partial` (as the archiver's partial
   * uploads do); `cutAtInsertPosition` keeps only the pages up to the insert position.
   */
  archivePartial(key: KeyRing['current'], options?: { cutAtInsertPosition?: boolean }): Promise<string>;
  stop(): Promise<void>;
}

export async function startPitrSource(backend: StorageBackend, database = 'app'): Promise<PitrSource> {
  const server = await startPostgres({ settings: SOURCE_SETTINGS });
  const root = await mkdtemp(join(tmpdir(), 'tidemark-pitr-'));
  await chmod(root, 0o755);
  await server.createDatabase(database);
  const [row] = await server.query<{ sysid: string }>('SELECT system_identifier::text AS sysid FROM pg_control_system()');
  const systemIdentifier = row!.sysid;
  const store = new ArtifactStore(backend);
  const archive = new WalArchive(backend);
  const archived = new Set<string>();
  const env = { ...process.env, [PASSWORD_ENV]: server.password };

  const encode = (input: Readable, key: KeyRing['current']) => encodeStream(input, { compression: defaultCompression(), ...(key ? { key } : {}) });

  const archiveFile = async (file: string, bytes: Buffer, timeline: number, key: KeyRing['current'], kind: WalFileManifest['fileKind']) => {
    const encoded = encode(Readable.from([bytes]), key);
    const [saved, summary] = await Promise.all([archive.saveData('main', systemIdentifier, file, encoded.output as Readable), encoded.summary]);
    await archive.commit({
      manifestVersion: MANIFEST_VERSION,
      engine: 'pg',
      target: 'main',
      systemIdentifier,
      file,
      fileKind: kind,
      timeline,
      archivedAt: new Date().toISOString(),
      agent: AGENT,
      pipeline: summary.pipeline,
      data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
    });
  };

  const currentSegment = async (): Promise<string> => {
    const [position] = await server.query<{ lsn: string; tli: number }>('SELECT pg_current_wal_insert_lsn()::text AS lsn, (SELECT timeline_id FROM pg_control_checkpoint()) AS tli');
    return segmentNameForLsn(position!.tli, position!.lsn);
  };

  return {
    server,
    systemIdentifier,
    root,
    workDir: join(root, 'pg'),
    async takeBaseBackup(requestId, key) {
      const startedAt = new Date();
      // The pg-agent's own base backup session (no database facts: these tests restore, not verify).
      const session = await startPgBaseBackup({ ...server.connection(database), passwordEnv: PASSWORD_ENV }, { label: `tidemark-${requestId}`, env, databaseFacts: false });
      const id = newArtifactId(requestId, startedAt);
      const encoded = encode(session.output, key);
      const [saved, summary, source] = await Promise.all([store.saveData('pg', 'main', id, encoded.output as Readable), encoded.summary, session.source]);
      const stoppedAt = new Date(source.stoppedAt);
      const manifest: Manifest = {
        manifestVersion: MANIFEST_VERSION,
        id,
        engine: 'pg',
        target: 'main',
        kind: 'base',
        format: 'pg_basebackup-tar',
        requestId,
        createdAt: startedAt.toISOString(),
        finishedAt: stoppedAt.toISOString(),
        agent: AGENT,
        source: source as unknown as Record<string, unknown>,
        pipeline: summary.pipeline,
        data: { key: saved.key, storedBytes: summary.storedBytes, rawBytes: summary.rawBytes, sha256: summary.sha256 },
        verify: false,
      };
      await store.commit(manifest);
      return manifest;
    },
    async archiveWal(key) {
      await server.query('SELECT pg_switch_wal()');
      const current = await currentSegment();
      const walDir = join(server.dataDir, 'pg_wal');
      const names = (await readdir(walDir)).filter((name) => /^[0-9A-F]{24}$/.test(name) && name < current && !archived.has(name)).sort();
      for (const name of names) {
        await archiveFile(name, await readFile(join(walDir, name)), parseInt(name.slice(0, 8), 16), key, 'segment');
        archived.add(name);
      }
      return names;
    },
    async archivePartial(key, options = {}) {
      const current = await currentSegment();
      let bytes = await readFile(join(server.dataDir, 'pg_wal', current));
      if (options.cutAtInsertPosition) {
        const [position] = await server.query<{ offset: number }>('SELECT (pg_walfile_name_offset(pg_current_wal_insert_lsn())).file_offset AS offset');
        bytes = bytes.subarray(0, Math.ceil(position!.offset / 8192) * 8192);
      }
      const file = `${current}.partial`;
      await archiveFile(file, bytes, parseInt(current.slice(0, 8), 16), key, 'partial');
      return file;
    },
    async stop() {
      await server.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export const pitrConfigYaml = (source: PitrSource, database = 'app') => `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: false }
pg: { workDir: ${source.workDir} }
targets:
  - name: main
    engine: pg
    postgres: { host: ${source.server.host}, port: ${source.server.port}, user: ${source.server.user}, database: ${database}, passwordEnv: ${PASSWORD_ENV} }
`;

export function pitrDeps(source: PitrSource, backend: StorageBackend, keys: KeyRing): RestoreDeps & { publisher: RecordingPublisher } {
  return {
    config: parseConfig(pitrConfigYaml(source), '/tmp/tidemark.yaml', { [PASSWORD_ENV]: source.server.password }),
    store: new ArtifactStore(backend),
    clusterFor: () => {
      throw new Error('a point-in-time restore never uses the logical cluster port');
    },
    publisher: recordingPublisher(),
    keys,
    agent: AGENT,
    clock: () => new Date(),
  };
}

let deliveries = 0;
/** A context for one restore command; each gets its own stream time (and so its own default directory). */
export function restoreContext(overrides: Record<string, unknown> = {}) {
  deliveries += 1;
  return testContext('restore.requested.pg.main', { storedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, deliveries)), streamSequence: 1000 + deliveries, ...overrides });
}

/** The restore.completed event the handler published, or throws with what it published instead. */
export function completedEvent(publisher: RecordingPublisher): RestoreCompleted {
  const event = publisher.published.find((p) => p.subject === 'restore.completed.pg.main')?.event;
  if (!event) throw new Error(`no restore.completed; published: ${JSON.stringify(publisher.published.map((p) => ({ subject: p.subject, error: p.event.error })))}`);
  return event as unknown as RestoreCompleted;
}

/** Labels in a restored server's table, over TCP with the source's credentials (as an operator would). */
export async function labelsAt(port: number, source: PitrSource, database = 'app'): Promise<string[]> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: source.server.user, password: source.server.password, database });
  await client.connect();
  try {
    return (await client.query<{ label: string }>('SELECT label FROM moments ORDER BY id')).rows.map((r) => r.label);
  } finally {
    await client.end();
  }
}

/** Stops the servers restores left running (they outlive the handler by design). */
export async function stopRestoredServers(directories: Iterable<string>): Promise<void> {
  for (const dir of directories) await stopPostmaster(dir, 10_000).catch(() => undefined);
}
