export type HealthCheck = () => Promise<{ ok: boolean; detail?: unknown }> | { ok: boolean; detail?: unknown };
export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}
/**
 * GET /healthz → 200 {status:"ok", checks:{…}} or 503 when any check fails. GET /readyz the same.
 * Port 0 picks a free port. Binds to TIDEMARK_HEALTH_HOST (default 127.0.0.1).
 */
export declare function startHealthServer(port: number, checks: Record<string, HealthCheck>, host?: string): Promise<HealthServer>;
