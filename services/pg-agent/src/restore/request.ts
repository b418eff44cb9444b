// What both kinds of restore share: which kind a command asks for, and what a restore has learnt
// so far, which its failure report names.
import type { RequestRestore } from '@tidemark/contracts';
import type { ArtifactStore } from '@tidemark/storage';

/** Filled in as the restore goes; read when it fails. */
export interface RestoreProgress {
  artifactId?: string;
  /** The database a logical restore writes into. */
  database?: string;
  /** The data directory a point-in-time restore writes into. */
  dataDirectory?: string;
}

/** pointInTime, intoDirectory/intoPort or a named base backup ask for a physical restore. */
export async function isPhysicalRestore(message: RequestRestore, store: ArtifactStore, target: string): Promise<boolean> {
  if (message.pointInTime !== undefined || message.intoDirectory !== undefined || message.intoPort !== undefined) return true;
  if (message.artifactId === undefined) return false;
  return (await store.readManifest('pg', target, message.artifactId))?.kind === 'base';
}
