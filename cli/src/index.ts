// The CLI's modules, for tests and for tools that want the same parsing and formatting.
export { parseArgs, USAGE, DEFAULT_NATS_URL, type Command, type GlobalOptions, type ParseResult } from './args.js';
export { formatBytes, formatAge, formatDuration, formatArtifactList, formatStatus, targetStatuses, statusExitCode, type TargetStatus } from './format.js';
export { listCatalog, type CatalogArtifact, type CatalogListReply } from './catalog-client.js';
export { backupFollower, restoreFollower, type FollowedEvent, type Follower, type Step } from './commands/follow.js';
export { buildBackupRequest, runBackup } from './commands/backup.js';
export { buildRestoreRequest, runRestore } from './commands/restore.js';
export { runList, runStatus } from './commands/list.js';
export { connectCli } from './connect.js';
export { runLs, formatTreeListing, formatMode } from './commands/ls.js';
export { formatProgress, formatEta, progressDisplay, followProgress, type ProgressOutput, type ProgressDisplay } from './commands/progress.js';
