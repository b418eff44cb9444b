export { restoreToDirectory } from './directory.js';
export { restoreToS3, type RestoreToS3Options } from './s3.js';
export { compareDirectoryWithTree, type CompareOptions } from './compare.js';
export { RestoreRefusedError } from './errors.js';
