import type { Logger } from './logger.js';
export interface Shutdown {
  /** Registers a step; steps run in reverse registration order on SIGTERM/SIGINT. */
  add(name: string, step: () => Promise<void> | void): void;
  /** Runs the steps once (also callable programmatically); exits the process when done if `exit`. */
  run(reason: string): Promise<void>;
}
export declare function installShutdown(logger: Logger, options?: { timeoutMs?: number; exit?: boolean }): Shutdown;
