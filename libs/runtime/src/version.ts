import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

function readPackage(dir: string): { version?: string; isRoot: boolean } | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown; workspaces?: unknown };
    return {
      ...(typeof pkg.version === 'string' ? { version: pkg.version } : {}),
      isRoot: pkg.workspaces !== undefined,
    };
  } catch {
    return undefined;
  }
}

/**
 * Tidemark's version, from the root package.json (for manifests and logs). The root is the first
 * package.json above this file that declares workspaces; while it has no version, the nearest
 * package's version stands in.
 */
export function readServiceVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  let nearest: string | undefined;
  for (;;) {
    const pkg = readPackage(dir);
    if (pkg?.isRoot) {
      cached = pkg.version ?? nearest ?? '0.0.0';
      return cached;
    }
    nearest ??= pkg?.version;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  cached = nearest ?? '0.0.0';
  return cached;
}
