import { reportStartupFailure } from './bootstrap.js';

/**
 * Runs a service's main, turning a start-up failure into exit code 1 and one JSON log line, plus
 * the reason as a sentence when stderr is a terminal (see reportStartupFailure).
 */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    reportStartupFailure(name, error);
    process.exit(1);
  });
}
