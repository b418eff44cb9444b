export * from './schedule/cron.js';
export * from './schedule/planner.js';
export * from './schedule/state-store.js';
export * from './schedule/tick.js';
export * from './handlers/request-scheduled-backup.js';
export { KvStateStore } from './adapters/kv-state-store.js';
export { createJetStreamCommandSender, type CommandSenderOptions } from './adapters/jetstream-command-sender.js';
export { startScheduler, DEFAULT_MAX_SLEEP_MS, type RunningScheduler, type SchedulerContext, type SchedulerOptions } from './scheduler.js';
