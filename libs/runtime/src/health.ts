import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export type HealthCheck = () => Promise<{ ok: boolean; detail?: unknown }> | { ok: boolean; detail?: unknown };

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

interface CheckResult {
  ok: boolean;
  detail?: unknown;
}

const CHECK_TIMEOUT_MS = 5_000;

async function runCheck(check: HealthCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, detail: `check did not answer within ${CHECK_TIMEOUT_MS} ms` }), CHECK_TIMEOUT_MS);
    });
    const result = await Promise.race([Promise.resolve().then(check), timeout]);
    return result.detail === undefined ? { ok: result.ok === true } : { ok: result.ok === true, detail: result.detail };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET /healthz → 200 {status:"ok", checks:{…}} or 503 when any check fails. GET /readyz the same.
 * Port 0 picks a free port. Binds to TIDEMARK_HEALTH_HOST (default 127.0.0.1).
 */
export async function startHealthServer(port: number, checks: Record<string, HealthCheck>, host?: string): Promise<HealthServer> {
  const bindHost = host ?? process.env['TIDEMARK_HEALTH_HOST'] ?? '127.0.0.1';
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
    // `checks` is read on every request, so checks added after start are included.
    const entries = Object.entries(checks);
    void Promise.all(entries.map(async ([name, check]) => [name, await runCheck(check)] as const)).then((results) => {
      const ok = results.every(([, r]) => r.ok);
      const body = JSON.stringify({ status: ok ? 'ok' : 'failing', checks: Object.fromEntries(results) });
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
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
