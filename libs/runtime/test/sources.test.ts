import { describe, expect, it } from 'vitest';
import { startSourceMonitor } from '../src/sources.js';
import { eventually, quietLogger } from './helpers.js';

describe('source monitor', () => {
  it('reports each source reachable (ok) or not (degraded, with since and the reason), re-probing on its interval', async () => {
    let dbUp = true;
    const monitor = startSourceMonitor({
      sources: new Map([
        ['main', async () => {
          if (!dbUp) throw new Error('connect ECONNREFUSED 127.0.0.1:5433');
        }],
        ['stuck', () => new Promise<void>(() => undefined)],
      ]),
      logger: quietLogger,
      intervalMs: 30,
      timeoutMs: 50,
    });
    try {
      await monitor.firstRound;
      expect(monitor.check('main')).toMatchObject({ ok: true, detail: { reachable: true } });
      // A probe that never answers counts as unreachable once its timeout passes.
      expect(monitor.check('stuck')).toMatchObject({ ok: false, degraded: true, detail: { reachable: false, lastError: 'no answer within 50 ms' } });
      dbUp = false;
      const down = await eventually(() => (monitor.state('main')?.reachable === false ? monitor.check('main') : undefined), 2000, 'main unreachable');
      expect(down).toMatchObject({ ok: false, degraded: true, detail: { reachable: false, lastError: 'connect ECONNREFUSED 127.0.0.1:5433' } });
      const since = monitor.state('main')?.since;
      await new Promise((r) => setTimeout(r, 100));
      expect(monitor.state('main')?.since).toBe(since); // still the start of the outage
      dbUp = true;
      await eventually(() => monitor.state('main')?.reachable === true, 2000, 'main reachable again');
      expect(monitor.check('unknown-source')).toMatchObject({ ok: false });
    } finally {
      monitor.stop();
    }
  });
});
