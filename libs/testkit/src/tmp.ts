// Throwaway directories under the OS temp dir, one per test server, removed on stop.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Creates a fresh directory such as /tmp/tidemark-pg-AbC123 (mode 0700). */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
}

/** Removes a directory made by makeTempDir; a missing directory is not an error. */
export async function removeTempDir(dir: string): Promise<void> {
  // Retries cover a server that is still closing files when stop() returns.
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

