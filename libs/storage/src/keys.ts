import type { Engine } from '@tidemark/contracts';
/**
 * Key layout:
 *   artifacts/<engine>/<target>/<artifactId>/manifest.json      written last: commits the artifact
 *   artifacts/<engine>/<target>/<artifactId>/data-<attempt>.bin the stored bytes (one per attempt)
 *   artifacts/<engine>/<target>/<artifactId>/verification.json  written by the verifier
 * artifactId = <UTC yyyymmddThhmmssZ of the request>-<first 10 hex of sha256(requestId)>, so a
 * redelivered request maps to the same artifact (idempotent), and ids sort by time.
 */
export declare const ARTIFACT_ROOTS: { readonly artifacts: 'artifacts/' };
export declare function newArtifactId(requestId: string, requestedAt: Date): string;
export declare function artifactKeys(engine: Engine, target: string, artifactId: string): {
  readonly prefix: string;
  readonly manifest: string;
  readonly verification: string;
  /** A fresh data key for one attempt; `attempt` is a random token. */
  data(attempt: string): string;
};
