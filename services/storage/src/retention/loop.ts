import type { Logger } from '@tidemark/runtime';

export interface PeriodicTask {
  /** Stops scheduling and waits for a pass under way to finish. */
  stop(): Promise<void>;
}

/**
 * Runs `task` now and then every `intervalMs` after the previous pass ends, so passes never
 * overlap however long one takes. A failing pass is logged and the next one still runs.
 */
export function startPeriodic(name: string, intervalMs: number, task: () => Promise<unknown>, logger: Logger): PeriodicTask {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const pass = async () => {
    try {
      await task();
    } catch (error) {
      logger.error({ err: error, task: name }, 'periodic task failed; it runs again at the next interval');
    }
  };
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().finally(() => {
        running = undefined;
        schedule(intervalMs);
      });
    }, delayMs);
    timer.unref?.();
  };
  schedule(0);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
