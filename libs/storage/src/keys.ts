import { createHash } from 'node:crypto';
import { ENGINES, TidemarkError, type Engine } from '@tidemark/contracts';

/**
 * Key layout:
 *   artifacts/<engine>/<target>/<artifactId>/manifest.json      written last: commits the artifact
 *   artifacts/<engine>/<target>/<artifactId>/data-<attempt>.bin the stored bytes (one per attempt)
 *   artifacts/<engine>/<target>/<artifactId>/verification.json  written by the verifier
 * artifactId = <UTC yyyymmddThhmmssZ of the request>-<first 10 hex of sha256(requestId)>, so a
 * redelivered request maps to the same artifact (idempotent), and ids sort by time.
 */
export const ARTIFACT_ROOTS = { artifacts: 'artifacts/' } as const;

export const MANIFEST_FILE = 'manifest.json';
export const VERIFICATION_FILE = 'verification.json';

export function newArtifactId(requestId: string, requestedAt: Date): string {
  if (Number.isNaN(requestedAt.getTime())) throw new TidemarkError('INTERNAL', 'cannot name an artifact after an invalid request time');
  // 2024-05-01T02:03:04.567Z → 20240501T020304Z
  const stamp = requestedAt.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  const digest = createHash('sha256').update(requestId).digest('hex').slice(0, 10);
  return `${stamp}-${digest}`;
}

/** One path segment: a target name, an artifact id or an attempt token can never climb out of its prefix. */
const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

function checkSegment(what: string, value: string): void {
  if (!SAFE_SEGMENT.test(value) || value.includes('..')) {
    throw new TidemarkError('INTERNAL', `invalid ${what} ${JSON.stringify(value)} for a storage key: use letters, digits, "_", "-" and "."`);
  }
}

export function artifactKeys(engine: Engine, target: string, artifactId: string): {
  readonly prefix: string;
  readonly manifest: string;
  readonly verification: string;
  /** A fresh data key for one attempt; `attempt` is a random token. */
  data(attempt: string): string;
} {
  if (!(ENGINES as readonly string[]).includes(engine)) throw new TidemarkError('INTERNAL', `unknown engine ${JSON.stringify(engine)} for a storage key`);
  checkSegment('target', target);
  checkSegment('artifact id', artifactId);
  const prefix = `${ARTIFACT_ROOTS.artifacts}${engine}/${target}/${artifactId}/`;
  return {
    prefix,
    manifest: `${prefix}${MANIFEST_FILE}`,
    verification: `${prefix}${VERIFICATION_FILE}`,
    data(attempt: string): string {
      checkSegment('attempt token', attempt);
      return `${prefix}data-${attempt}.bin`;
    },
  };
}

export interface ArtifactKeyParts {
  readonly engine: Engine;
  readonly target: string;
  readonly artifactId: string;
  /** The artifact's key prefix, ending in '/'. */
  readonly prefix: string;
  /** The object's name inside the artifact: "manifest.json", "data-<attempt>.bin", … */
  readonly name: string;
}

/** Splits a key of the artifact layout, or undefined when the key is not one. */
export function parseArtifactKey(key: string): ArtifactKeyParts | undefined {
  if (!key.startsWith(ARTIFACT_ROOTS.artifacts)) return undefined;
  const parts = key.slice(ARTIFACT_ROOTS.artifacts.length).split('/');
  if (parts.length !== 4) return undefined;
  const [engine, target, artifactId, name] = parts as [string, string, string, string];
  if (!(ENGINES as readonly string[]).includes(engine) || !target || !artifactId || !name) return undefined;
  return { engine: engine as Engine, target, artifactId, prefix: `${ARTIFACT_ROOTS.artifacts}${engine}/${target}/${artifactId}/`, name };
}
