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

/** Runs `use` with a fresh temp dir and removes it afterwards, whatever `use` does. */
export async function withTempDir<T>(prefix: string, use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await use(dir);
  } finally {
    await removeTempDir(dir);
  }
}
