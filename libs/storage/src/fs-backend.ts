import type { StorageBackend } from './backend.js';
export interface FsBackendConfig {
  /** Root directory; created if missing. Temp files live in `<root>/.tmp/` and are never listed. */
  readonly root: string;
}
export declare function createFsBackend(config: FsBackendConfig): Promise<StorageBackend>;
