export * from './schema.js';
export * from './subjects.js';
export * from './errors.js';
export * from './codec.js';
export * from './messages.js';
export * from './point-in-time.js';
export * from './manifest.js';
export * from './streams.js';
