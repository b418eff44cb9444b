export { TREE_FORMAT, TREE_VERSION, type TreeEntry, type TreeEntryType, type TreeHeader } from './tree/entry.js';
export type { FilesSource, FilesSourceConfig, SourceEntry } from './sources/source.js';
export type { SnapshotOptions, SnapshotResult } from './snapshot/api.js';
export type { RestoreSummary, RestoreToDirectoryOptions, TreeComparison } from './restore/api.js';
