import { TidemarkError } from '@tidemark/contracts';
import type { StorageBackend } from './backend.js';
import { createFsBackend, type FsBackendConfig } from './fs-backend.js';
import { createS3Backend, type S3BackendConfig } from './s3-backend.js';

export type StorageConfig = ({ readonly type: 'fs' } & FsBackendConfig) | ({ readonly type: 's3' } & S3BackendConfig);

export async function createBackend(config: StorageConfig): Promise<StorageBackend> {
  switch (config.type) {
    case 'fs':
      return createFsBackend(config);
    case 's3':
      return createS3Backend(config);
    default: {
      const type: unknown = (config as { type?: unknown }).type;
      throw new TidemarkError('CONFIG_INVALID', `unknown storage type ${JSON.stringify(type)}; use "fs" or "s3"`);
    }
  }
}
