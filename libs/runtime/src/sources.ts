// Reachability of the systems an agent backs up, for health and readiness. Each source is probed
// in the background on a timer, so a health request never waits on (or hammers) a database.
import type { CheckResult } from './health.js';
import type { Logger } from './logger.js';

/** Resolves when the source answered; throws (with a reason people can act on) when it did not. */
export type SourceProbe = (signal: AbortSignal) => Promise<void>;

export interface SourceState {
  readonly reachable: boolean;
  /** Since when it has been reachable (or not). */
  readonly since: string;
  readonly checkedAt: string;
  readonly lastError?: string;
}

export interface SourceMonitor {
  /** Resolves once every source has been probed once (each bounded by the probe timeout). */
  readonly firstRound: Promise<void>;
  state(name: string): SourceState | undefined;
  /** ok when reachable; `degraded` when not: the agent waits for the source, restarting it would not help. */
  check(name: string): CheckResult;
  stop(): void;
}

export interface SourceMonitorOptions {
  readonly sources: ReadonlyMap<string, SourceProbe>;
  readonly logger: Pick<Logger, 'warn' | 'info'>;
  /** Default 15 s. */
  readonly intervalMs?: number;
  /** Default 5 s: the longest a probe may take before the source counts as unreachable. */
  readonly timeoutMs?: number;
  readonly clock?: () => Date;
}

export function startSourceMonitor(options: SourceMonitorOptions): SourceMonitor {
  const intervalMs = options.intervalMs ?? 15_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const clock = options.clock ?? (() => new Date());
  const states = new Map<string, SourceState>();
  const stopping = new AbortController();

  const probeOne = async (name: string, probe: SourceProbe): Promise<void> => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const onStop = () => controller.abort();
    stopping.signal.addEventListener('abort', onStop, { once: true });
    let error: string | undefined;
    try {
      await Promise.race([
        probe(controller.signal),
        new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(new Error(`no answer within ${timeoutMs} ms`)), { once: true })),
      ]);
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
    } finally {
      clearTimeout(timer);
      stopping.signal.removeEventListener('abort', onStop);
    }
    if (stopping.signal.aborted) return;
    const now = clock().toISOString();
    const previous = states.get(name);
    const reachable = error === undefined;
    if (previous !== undefined && previous.reachable !== reachable) {
      if (reachable) options.logger.info({ source: name, unreachableSince: previous.since }, 'source reachable again');
      else options.logger.warn({ source: name, err: error }, 'source unreachable');
    }
    states.set(name, {
      reachable,
      since: previous?.reachable === reachable ? previous.since : now,
      checkedAt: now,
      ...(error !== undefined ? { lastError: error } : {}),
    });
  };

  const round = () => Promise.all([...options.sources].map(([name, probe]) => probeOne(name, probe))).then(() => undefined);
  let running: Promise<void> | undefined;
  const firstRound = round();
  const timer = setInterval(() => {
    running ??= round().finally(() => {
      running = undefined;
    });
  }, intervalMs);
  timer.unref();

  return {
    firstRound,
    state: (name) => states.get(name),
    check(name) {
      const state = states.get(name);
      if (state === undefined) return { ok: false, detail: { reachable: null, detail: 'not probed yet' } };
      return state.reachable ? { ok: true, detail: state } : { ok: false, degraded: true, detail: state };
    },
    stop() {
      clearInterval(timer);
      stopping.abort();
    },
  };
}
