export { TREE_FORMAT, TREE_VERSION, type TreeEntry, type TreeEntryType, type TreeHeader } from './tree/entry.js';
export { bytesOf, textOf, compareTreePaths } from './tree/paths.js';
export { parseTree } from './tree/index.js';
export type { FilesSource, FilesSourceConfig, SourceEntry } from './sources/source.js';
export { openSource, inspectOllamaStore, type OllamaInspection } from './sources/index.js';
export type { SnapshotOptions, SnapshotResult } from './snapshot/api.js';
export { takeSnapshot } from './snapshot/index.js';
export type { RestoreSummary, RestoreToDirectoryOptions, TreeComparison } from './restore/api.js';
export { restoreToDirectory, restoreToS3, compareDirectoryWithTree, RestoreRefusedError, type RestoreToS3Options, type CompareOptions } from './restore/index.js';
