import type { StorageBackend } from './backend.js';
import type { FsBackendConfig } from './fs-backend.js';
import type { S3BackendConfig } from './s3-backend.js';

export type StorageConfig = ({ readonly type: 'fs' } & FsBackendConfig) | ({ readonly type: 's3' } & S3BackendConfig);

export declare function createBackend(config: StorageConfig): Promise<StorageBackend>;
