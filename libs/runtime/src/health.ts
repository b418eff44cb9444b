import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What one check says about one part of the service:
 * - `ok: true`: the part works;
 * - `ok: false, degraded: true`: the part is down, but the service carries on and recovers by
 *   itself when the part comes back (a source database outage). Restarting would not help;
 * - `ok: false`: the part is failing.
 */
export interface CheckResult {
  readonly ok: boolean;
  readonly degraded?: boolean;
  readonly detail?: unknown;
}

export type HealthCheck = () => Promise<CheckResult> | CheckResult;

export type HealthStatus = 'ok' | 'degraded' | 'failing';

export interface HealthChecks {
  /** Parts whose state both endpoints report. */
  readonly health: Record<string, HealthCheck>;
  /** Start-up steps and bound consumers: only /readyz waits for them. */
  readonly readiness: Record<string, HealthCheck>;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

const CHECK_TIMEOUT_MS = 5_000;

async function runCheck(check: HealthCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, detail: `check did not answer within ${CHECK_TIMEOUT_MS} ms` }), CHECK_TIMEOUT_MS);
    });
    const result = await Promise.race([Promise.resolve().then(check), timeout]);
    const ok = result.ok === true;
    return {
      ok,
      ...(!ok && result.degraded === true ? { degraded: true } : {}),
      ...(result.detail === undefined ? {} : { detail: result.detail }),
    };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

const isFailing = (result: CheckResult) => !result.ok && result.degraded !== true;

/** The worst state among the results: one failing part makes the whole `failing`. */
export function overallStatus(results: readonly CheckResult[]): HealthStatus {
  if (results.some(isFailing)) return 'failing';
  return results.some((r) => !r.ok) ? 'degraded' : 'ok';
}

async function runAll(checks: Record<string, HealthCheck>): Promise<[string, CheckResult][]> {
  return Promise.all(Object.entries(checks).map(async ([name, check]) => [name, await runCheck(check)] as [string, CheckResult]));
}

/**
 * GET /healthz (liveness): 200 while nothing is failing, with `status` "ok" or "degraded" (a part
 * is down and the service waits for it: an orchestrator must not restart it for that); 503 with
 * "failing" otherwise.
 * GET /readyz: 200 only when every start-up step is done, every consumer is bound and nothing is
 * failing (degraded parts allowed, and listed); else 503 with `notReady` naming what is missing.
 * Port 0 picks a free port. Binds to TIDEMARK_HEALTH_HOST (default 127.0.0.1).
 */
export async function startHealthServer(port: number, checks: HealthChecks, host?: string): Promise<HealthServer> {
  const bindHost = host ?? process.env['TIDEMARK_HEALTH_HOST'] ?? '127.0.0.1';
  const { health, readiness } = checks;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' });
      res.end(JSON.stringify({ error: 'only GET is supported' }));
      return;
    }
    if (path !== '/healthz' && path !== '/readyz') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found: use /healthz or /readyz' }));
      return;
    }
    // The records are read on every request, so checks added after start are included.
    const answer = async () => {
      const results = await runAll(path === '/readyz' ? { ...health, ...readiness } : health);
      const status = overallStatus(results.map(([, r]) => r));
      const degraded = results.filter(([, r]) => !r.ok && !isFailing(r)).map(([name]) => name);
      const body: Record<string, unknown> = { status };
      let httpStatus = status === 'failing' ? 503 : 200;
      if (path === '/readyz') {
        const notReady = results.filter(([, r]) => isFailing(r)).map(([name]) => name);
        body['ready'] = notReady.length === 0;
        if (notReady.length > 0) body['notReady'] = notReady;
        httpStatus = notReady.length === 0 ? 200 : 503;
      }
      if (degraded.length > 0) body['degraded'] = degraded;
      body['checks'] = Object.fromEntries(results);
      res.writeHead(httpStatus, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
    };
    void answer();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
