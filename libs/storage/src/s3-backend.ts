import type { StorageBackend } from './backend.js';
export interface S3BackendConfig {
  readonly endPoint: string;
  readonly port?: number;
  readonly useSSL: boolean;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  readonly region?: string;
  /** Optional key prefix inside the bucket. */
  readonly prefix?: string;
  /** Use path-style URLs (MinIO, s3rver). Default true. */
  readonly pathStyle?: boolean;
  /** Create the bucket when missing. Default true. */
  readonly createBucket?: boolean;
}
/** S3 through the `minio` client (MinIO or any S3). */
export declare function createS3Backend(config: S3BackendConfig): Promise<StorageBackend>;
