import type { Logger } from './logger.js';

export interface Shutdown {
  /** Registers a step; steps run in reverse registration order on SIGTERM/SIGINT. */
  add(name: string, step: () => Promise<void> | void): void;
  /** Runs the steps once (also callable programmatically); exits the process when done if `exit`. */
  run(reason: string): Promise<void>;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * Graceful shutdown: the first SIGTERM/SIGINT runs the registered steps, newest first (so
 * consumers stop before the connection they use is drained), within `timeoutMs` overall
 * (default 30 s). A step that fails is logged and the next one still runs.
 */
export function installShutdown(logger: Logger, options: { timeoutMs?: number; exit?: boolean } = {}): Shutdown {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const exit = options.exit ?? true;
  const steps: { name: string; step: () => Promise<void> | void }[] = [];
  let running: Promise<void> | undefined;

  const runSteps = async () => {
    for (const { name, step } of [...steps].reverse()) {
      try {
        await step();
        logger.debug({ step: name }, 'shutdown step done');
      } catch (error) {
        logger.error({ step: name, err: error }, `shutdown step ${name} failed; continuing with the next one`);
      }
    }
  };

  const onSignal = (signal: NodeJS.Signals) => {
    void shutdown.run(signal);
  };

  const shutdown: Shutdown = {
    add(name, step) {
      steps.push({ name, step });
    },
    run(reason) {
      if (running) return running;
      for (const signal of SIGNALS) process.off(signal, onSignal);
      logger.info({ reason }, 'shutting down');
      running = (async () => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), timeoutMs);
          timer.unref();
        });
        const finished = await Promise.race([runSteps().then(() => false), timedOut]);
        clearTimeout(timer);
        if (finished) logger.warn({ timeoutMs }, 'shutdown steps did not finish in time; exiting anyway');
        else logger.info('shutdown complete');
        if (exit) {
          logger.flush?.();
          process.exit(0);
        }
      })();
      return running;
    },
  };
  for (const signal of SIGNALS) process.once(signal, onSignal);
  return shutdown;
}
