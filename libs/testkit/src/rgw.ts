// A second real S3 server for tests: Ceph's RADOS Gateway (RGW) on a throwaway one-node cluster
// (one monitor, one OSD on memstore, one gateway), from Debian bookworm's own Ceph 16 packages.
// Unlike s3rver it has bucket versioning, object lock (COMPLIANCE refuses deletes), lifecycle and a
// strict multipart implementation, which the suites that need a real S3 run against.
//
// Everything lives in one short temp directory (monitor and OSD data, admin sockets, logs, the
// generated ceph.conf), the daemons run in the foreground as the calling user, and stop() kills
// them and removes the directory. No daemon authenticates another (auth none): the cluster only
// listens on loopback and lives for one test file.
import { randomBytes, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'minio';
import { MAX_SOCKET_PATH_BYTES, socketPathFits } from '@tidemark/pg';
import { freePort, portIsHeld } from './ports.js';
import { runProcess, startProcess, type StartedProcess } from './process.js';
import { testProvider } from './provider.js';
import { containerMinio } from './containers.js';
import { makeTempDir, removeTempDir } from './tmp.js';
import type { LocalS3Endpoint } from './s3.js';

/** The gateway is the S3 server: its faults (freeze, halt) touch radosgw only, the cluster's data stays. */
export interface RgwEndpoint extends LocalS3Endpoint {
  /** How long the cluster took from the first command until a signed ListBuckets succeeded. */
  readonly startupMs: number;
}

export interface StartRgwOptions {
  /** Where the Ceph binaries are; TIDEMARK_CEPH_BINDIR or /usr/bin by default. */
  readonly binDir?: string;
  /** Picks a free loopback port; freePort by default (tests of the start itself replace it). */
  readonly pickPort?: () => Promise<number>;
  /** How long each start-up step (quorum, OSD up, gateway answering, …) may take; 60 s by default. */
  readonly stepTimeoutMs?: number;
}

/** Each binary the cluster needs, and the Debian package that ships it. */
const CEPH_BINARIES = {
  'ceph-mon': 'ceph-mon',
  'ceph-osd': 'ceph-osd',
  radosgw: 'radosgw',
  'radosgw-admin': 'ceph-common',
  monmaptool: 'ceph-common',
  ceph: 'ceph-common',
} as const;
type CephBinary = keyof typeof CEPH_BINARIES;

export const CEPH_INSTALL_HINT = 'apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw (or: bash scripts/setup.sh --ci)';

const MON_ID = 'a';
const GATEWAY_NAME = 'client.rgw.tidemark';
const REGION = 'us-east-1';
const DEFAULT_STEP_TIMEOUT_MS = 60_000;
const COMMAND_TIMEOUT_MS = 30_000;
/** memstore keeps objects in RAM; this caps it, and is more than any suite writes. */
const MEMSTORE_BYTES = 4 * 1024 * 1024 * 1024;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const OUTPUT_DRAIN_MS = 5000;

/** Starts a one-node Ceph cluster with an S3 gateway on a free loopback port, and an S3 user. */
export async function startRgw(options: StartRgwOptions = {}): Promise<RgwEndpoint> {
  if (testProvider() === 'containers') {
    // No Ceph image is maintained for this; MinIO has the same S3 features (versioning, object lock).
    const started = Date.now();
    const minio = await containerMinio();
    const { endpoint, port, accessKey, secretKey, region } = minio;
    const local = (): never => {
      throw new Error('fault controls need the local Ceph RGW, not TIDEMARK_TEST_PROVIDER=containers');
    };
    return {
      endpoint, port, accessKey, secretKey, region, directory: '', startupMs: Date.now() - started, stop: () => minio.stop(),
      freeze: local, resume: local, halt: local, startAgain: local, incompleteUploads: local,
    };
  }
  const binDir = options.binDir ?? process.env['TIDEMARK_CEPH_BINDIR'] ?? '/usr/bin';
  await requireCephBinaries(binDir);
  const settings: ClusterSettings = {
    binDir,
    pickPort: options.pickPort ?? (() => freePort()),
    stepTimeoutMs: options.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS,
  };
  const started = Date.now();
  try {
    return await startCluster(settings, started);
  } catch (error) {
    // freePort releases a port before the daemon binds it; losing that race once is no failure.
    if (!(error instanceof PortTakenError)) throw error;
    return startCluster(settings, started);
  }
}

/** A daemon died because another process held the port it was given. */
class PortTakenError extends Error {}

const PORT_TAKEN = /Address already in use/;

interface ClusterSettings {
  readonly binDir: string;
  readonly pickPort: () => Promise<number>;
  readonly stepTimeoutMs: number;
}

async function startCluster(settings: ClusterSettings, started: number): Promise<RgwEndpoint> {
  const directory = await makeTempDir('tmrgw');
  const cluster = new CephCluster(directory, settings);
  try {
    const endpoint = await cluster.start();
    let stopped: Promise<void> | undefined;
    return {
      ...endpoint,
      directory,
      startupMs: Date.now() - started,
      freeze: () => cluster.gateway().signal('SIGSTOP'),
      resume: () => cluster.gateway().signal('SIGCONT'),
      halt: () => cluster.haltGateway(),
      startAgain: () => cluster.startGatewayAgain(),
      incompleteUploads: (bucket) => cluster.incompleteUploads(bucket),
      stop: () => (stopped ??= cluster.stop().finally(() => removeTempDir(directory))),
    };
  } catch (error) {
    await cluster.stop().catch(() => undefined);
    await removeTempDir(directory);
    throw error;
  }
}

async function requireCephBinaries(binDir: string): Promise<void> {
  const missing: string[] = [];
  for (const [binary, debianPackage] of Object.entries(CEPH_BINARIES)) {
    const path = join(binDir, binary);
    const found = await access(path, constants.X_OK).then(
      () => true,
      () => false,
    );
    if (!found) missing.push(`${path} (package ${debianPackage})`);
  }
  if (missing.length > 0) {
    throw new Error(`Ceph RGW, the tests' second S3 server, is not installed: missing ${missing.join(', ')}. Install it with: ${CEPH_INSTALL_HINT}`);
  }
}

interface GatewayEndpoint {
  readonly endpoint: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

class CephCluster {
  private daemons: StartedProcess[] = [];
  private radosgw: StartedProcess | undefined;
  private client: Client | undefined;
  /** The loopback port each listening daemon was given, to tell a lost port race from a crash. */
  private readonly daemonPorts = new Map<StartedProcess, number>();
  private readonly configPath: string;
  private readonly logDirectory: string;

  constructor(
    private readonly directory: string,
    private readonly settings: ClusterSettings,
  ) {
    this.configPath = join(directory, 'ceph.conf');
    this.logDirectory = join(directory, 'log');
  }

  async start(): Promise<GatewayEndpoint> {
    const socketPath = join(this.directory, 'run', `${GATEWAY_NAME}.asok`);
    if (!socketPathFits(socketPath)) {
      throw new Error(`the Ceph admin socket ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: set TMPDIR to a shorter directory`);
    }
    const monPort = await this.settings.pickPort();
    let gatewayPort = await this.settings.pickPort();
    while (gatewayPort === monPort) gatewayPort = await this.settings.pickPort();
    const fsid = randomUUID();
    for (const sub of ['mon', 'osd', 'run', 'log', 'rgw']) await mkdir(join(this.directory, sub));
    await writeFile(this.configPath, cephConfig({ directory: this.directory, fsid, monPort, gatewayPort }));

    const monmap = join(this.directory, 'monmap');
    await this.run('monmaptool', ['--create', '--fsid', fsid, '--addv', MON_ID, `[v2:127.0.0.1:${monPort}]`, monmap]);
    await this.run('ceph-mon', ['--mkfs', '-i', MON_ID, '--monmap', monmap]);
    this.daemon('ceph-mon', ['-i', MON_ID], monPort);
    await this.waitUntil('the monitor forms a quorum', async () => {
      const status = JSON.parse(await this.ceph(['quorum_status'])) as { quorum_names?: string[] };
      return status.quorum_names?.includes(MON_ID) === true;
    });

    const osdUuid = randomUUID();
    const created = JSON.parse(await this.ceph(['osd', 'new', osdUuid])) as { osdid?: unknown };
    if (typeof created.osdid !== 'number') throw new Error(`ceph osd new answered ${JSON.stringify(created)}, not an OSD id`);
    const osdId = String(created.osdid);
    await mkdir(join(this.directory, 'osd', osdId));
    await this.run('ceph-osd', ['-i', osdId, '--mkfs', '--osd-uuid', osdUuid]);
    this.daemon('ceph-osd', ['-i', osdId]);
    await this.waitUntil(`osd.${osdId} is up and in`, async () => {
      const dump = JSON.parse(await this.ceph(['osd', 'dump'])) as { osds?: Array<{ osd: number; up: number; in: number }> };
      return dump.osds?.some((osd) => String(osd.osd) === osdId && osd.up === 1 && osd.in === 1) === true;
    });

    // The gateway creates its pools on first start; the user is created after that, so the two
    // never race to create the default realm and zone.
    const endpoint = await this.startGateway(gatewayPort);

    const accessKey = `TM${randomBytes(9).toString('hex').toUpperCase()}`;
    const secretKey = randomBytes(24).toString('base64url');
    await this.run('radosgw-admin', ['user', 'create', '--uid=tidemark', '--display-name=Tidemark tests', `--access-key=${accessKey}`, `--secret=${secretKey}`], { secret: secretKey });
    const client = new Client({ endPoint: '127.0.0.1', port: gatewayPort, useSSL: false, accessKey, secretKey, region: REGION, pathStyle: true });
    this.client = client;
    await this.waitUntil('a signed ListBuckets succeeds', async () => {
      await client.listBuckets();
      return true;
    });
    // The first bucket makes the gateway create its index and data pools, which takes seconds: done
    // here, so that no test's first request pays for it.
    const warmUp = `tidemark-warm-up-${randomBytes(4).toString('hex')}`;
    await this.waitUntil('the gateway creates and removes a first bucket', async () => {
      if (!(await client.bucketExists(warmUp))) await client.makeBucket(warmUp, REGION);
      await client.removeBucket(warmUp);
      return true;
    });
    return { endpoint, port: gatewayPort, accessKey, secretKey, region: REGION };
  }

  /** Starts radosgw on `port` (the one in ceph.conf) and waits until it answers HTTP. */
  private async startGateway(port: number): Promise<string> {
    this.radosgw = this.daemon('radosgw', ['-n', GATEWAY_NAME], port);
    const endpoint = `http://127.0.0.1:${port}`;
    await this.waitUntil('the gateway answers HTTP', async () => {
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return true;
    });
    return endpoint;
  }

  gateway(): StartedProcess {
    if (this.radosgw === undefined) throw new Error('the Ceph cluster has no gateway running');
    return this.radosgw;
  }

  /** Kills radosgw only: the monitor and the OSD keep the data. */
  async haltGateway(): Promise<void> {
    const gateway = this.gateway();
    await gateway.stop({ signal: 'SIGKILL' });
    this.daemons = this.daemons.filter((daemon) => daemon !== gateway);
  }

  async startGatewayAgain(): Promise<void> {
    const halted = this.gateway();
    if (!halted.hasExited()) throw new Error('radosgw is still running: halt() it before starting it again');
    await this.startGateway(this.daemonPorts.get(halted)!);
  }

  async incompleteUploads(bucket: string): Promise<string[]> {
    if (this.client === undefined) throw new Error('the Ceph cluster has not started');
    const client = this.client;
    // The client lists each upload's parts too: an upload completed or aborted in between fails the
    // listing (NoSuchKey, NoSuchUpload), and a listing taken again no longer shows it.
    for (let attempt = 1; ; attempt += 1) {
      try {
        const keys: string[] = [];
        for await (const upload of client.listIncompleteUploads(bucket, '', true)) keys.push(upload.key);
        return keys;
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt >= 5 || (code !== 'NoSuchKey' && code !== 'NoSuchUpload')) throw error;
      }
    }
  }

  /**
   * Kills every daemon at once: the cluster's data is thrown away with its directory, so nothing
   * needs a clean shutdown (and radosgw waits for its exit timeout on SIGTERM).
   */
  async stop(): Promise<void> {
    await Promise.all(this.daemons.map((daemon) => daemon.stop({ signal: 'SIGKILL' })));
  }

  private daemon(binary: CephBinary, args: readonly string[], port?: number): StartedProcess {
    const started = startProcess(join(this.settings.binDir, binary), ['-f', '-c', this.configPath, ...args], { name: binary });
    this.daemons.push(started);
    if (port !== undefined) this.daemonPorts.set(started, port);
    return started;
  }

  private async run(binary: CephBinary, args: readonly string[], options: { secret?: string } = {}): Promise<string> {
    try {
      const { stdout } = await runProcess(join(this.settings.binDir, binary), ['-c', this.configPath, ...args], { timeoutMs: COMMAND_TIMEOUT_MS });
      return stdout;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const shown = options.secret === undefined ? message : message.replaceAll(options.secret, '<secret>');
      throw new Error(`${shown}\n${await this.logTails()}`);
    }
  }

  private ceph(args: readonly string[]): Promise<string> {
    return this.run('ceph', ['--connect-timeout', '5', '--format', 'json', ...args]);
  }

  /** Polls `ready` until it holds; a daemon that exits or a step past its deadline fails with the logs. */
  private async waitUntil(step: string, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.settings.stepTimeoutMs;
    let lastError = '';
    for (;;) {
      const dead = this.daemons.find((daemon) => daemon.hasExited());
      if (dead !== undefined) {
        // 'exit' can come before the daemon's last output is read. Bounded: a child that kept its
        // stdout open holds 'close'.
        await Promise.race([dead.outputRead, sleep(OUTPUT_DRAIN_MS)]);
        const message = `Ceph RGW did not start: ${dead.name} exited while waiting until ${step}; its output:\n${dead.recentOutput()}\n${await this.logTails()}`;
        // radosgw 16 may crash on its way out after a failed bind (a segfault in rgw_reshard) before
        // it logs "Address already in use": whether its port is held elsewhere is what tells.
        const port = this.daemonPorts.get(dead);
        if (PORT_TAKEN.test(message) || (port !== undefined && (await portIsHeld(port)))) throw new PortTakenError(message);
        throw new Error(message);
      }
      try {
        // A daemon's exit or the deadline ends the wait at once, even while a poll hangs (the minio
        // client has no request timeout of its own).
        const anyExit = Promise.race(this.daemons.map((daemon) => daemon.exited.then(() => false)));
        const poll = ready();
        poll.catch(() => undefined); // a poll that is outlived may still fail: not an unhandled rejection
        let timer: NodeJS.Timeout | undefined;
        const pastDeadline = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()) + 100);
        });
        const done = await Promise.race([poll, anyExit, pastDeadline]).finally(() => clearTimeout(timer));
        if (done) return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
      }
      if (Date.now() > deadline) {
        const cause = lastError === '' ? '' : ` (last error: ${lastError.split('\n')[0]})`;
        throw new Error(`Ceph RGW did not start: timed out after ${this.settings.stepTimeoutMs} ms waiting until ${step}${cause}\n${await this.logTails()}`);
      }
      await sleep(250);
    }
  }

  /** The last lines of every daemon's log file, to explain a failed start. */
  private async logTails(lines = 25): Promise<string> {
    const names = await readdir(this.logDirectory).catch(() => [] as string[]);
    const tails: string[] = [];
    for (const name of names.sort()) {
      const text = await readFile(join(this.logDirectory, name), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      tails.push(`--- ${name} (last ${lines} lines) ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`);
    }
    return tails.join('\n');
  }
}

function cephConfig(options: { directory: string; fsid: string; monPort: number; gatewayPort: number }): string {
  const { directory, fsid, monPort, gatewayPort } = options;
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = ${MON_ID}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
# A taken port fails the start within a second (and the start is retried), not after 3 × 5 s.
ms bind retry count = 1
ms bind retry delay = 1
# radosgw asks for a "secure" connection to the monitor by default, which auth none cannot give.
ms mon client mode = crc
run dir = ${directory}/run
admin socket = ${directory}/run/$name.asok
pid file = ${directory}/run/$name.pid
log file = ${directory}/log/$name.log
log to stderr = false
mon data = ${directory}/mon/$id
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
# Commits the monitor's map changes (each pool the gateway creates is one) without waiting a second.
paxos propose interval = 0.05
osd data = ${directory}/osd/$id
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0

[${GATEWAY_NAME}]
rgw frontends = beast endpoint=127.0.0.1:${gatewayPort}
rgw data = ${directory}/rgw
`;
}
