import type { Compression } from '@tidemark/contracts';
/** True when the zstd native binding loaded. */
export declare function zstdAvailable(): boolean;
/** zstd when available, otherwise gzip. */
export declare function defaultCompression(): Compression;
