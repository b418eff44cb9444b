// A real nats-server with JetStream for integration tests: one process per call, on a free
// loopback port, with its own store directory that is removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { testProvider } from './provider.js';
import { containerNats } from './containers.js';
import type { JetStreamManager } from 'nats';
import { MSG_ID_HEADER, decode, subjectMatches } from '@tidemark/contracts';

export const NATS_SERVER_BINARY = process.env['TIDEMARK_NATS_SERVER'] ?? '/usr/sbin/nats-server';

export interface NatsTestServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its store directory. */
  stop(): Promise<void>;
  /**
   * Stops and starts the server on the same port and store directory (data survives).
   * `whileDown` runs between the two (an outage a test observes); containers ignore it.
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  log: string;
}

function spawnServer(port: number, storeDir: string): Running {
  const child = spawn(NATS_SERVER_BINARY, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running: Running = {
    child,
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
    log: '',
  };
  const keep = (chunk: Buffer) => {
    // Only the tail is kept: enough to explain a failed start.
    running.log = (running.log + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return running;
}

async function waitReady(running: Running, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let spawnError: Error | undefined;
  running.child.once('error', (error) => {
    spawnError = error;
  });
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`nats-server could not be started from ${NATS_SERVER_BINARY}: ${spawnError.message}`);
    if (running.child.exitCode !== null) {
      throw new Error(`nats-server exited with code ${running.child.exitCode} before it was ready; log:\n${running.log}`);
    }
    if (running.log.includes('Server is ready') && (await canConnect(port))) return;
    await sleep(25);
  }
  throw new Error(`nats-server did not become ready on port ${port} within ${timeoutMs} ms; log:\n${running.log}`);
}

async function stopServer(running: Running): Promise<void> {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return;
  running.child.kill('SIGTERM');
  const killed = await Promise.race([running.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!killed) {
    running.child.kill('SIGKILL');
    await running.exited;
  }
}

/**
 * Starts nats-server with JetStream on a free loopback port and waits until it accepts
 * connections. With TIDEMARK_TEST_PROVIDER=containers it runs in a container instead.
 */
export async function startNats(options: { readyTimeoutMs?: number; /** A given port (a client already waits on it); default a free one. */ port?: number } = {}): Promise<NatsTestServer> {
  if (testProvider() === 'containers') {
    const container = await containerNats();
    return { url: container.url, port: container.port, storeDir: '', stop: () => container.stop(), restart: () => container.restart() };
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const storeDir = await mkdtemp(join(tmpdir(), 'tidemark-nats-'));
  let port = 0;
  let running: Running | undefined;
  // The free port is released before nats-server binds it; if another process takes it in
  // between, one retry on a new port is enough.
  for (let attempt = 1; running === undefined; attempt++) {
    port = options.port ?? (await freePort());
    const candidate = spawnServer(port, storeDir);
    try {
      await waitReady(candidate, port, readyTimeoutMs);
      running = candidate;
    } catch (error) {
      await stopServer(candidate);
      if (attempt >= 2 || options.port !== undefined) {
        await rm(storeDir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  let current: Running = running;
  let stopped = false;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopServer(current);
      await rm(storeDir, { recursive: true, force: true });
    },
    async restart(whileDown) {
      if (stopped) throw new Error('the nats test server was stopped; start a new one instead of restarting it');
      await stopServer(current);
      try {
        await whileDown?.();
      } finally {
        current = spawnServer(port, storeDir);
        await waitReady(current, port, readyTimeoutMs);
      }
    },
  };
}

export interface StoredStreamMessage {
  readonly seq: number;
  readonly subject: string;
  readonly msgId: string;
  readonly body: unknown;
}

/** Every message a stream holds on `subject` (wildcards allowed), oldest first, decoded: what counting "one per id" needs. */
export async function storedMessages(jsm: JetStreamManager, stream: string, subject: string): Promise<StoredStreamMessage[]> {
  const { state } = await jsm.streams.info(stream);
  const out: StoredStreamMessage[] = [];
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq += 1) {
    // A deleted sequence (a work-queue stream's acked message) is a gap, not an error.
    const msg = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
    if (!msg || !subjectMatches(subject, msg.subject)) continue;
    out.push({ seq, subject: msg.subject, msgId: msg.header.get(MSG_ID_HEADER), body: decode(msg.data, msg.header) });
  }
  return out;
}
