import type { Logger as PinoLogger } from 'pino';
export type Logger = PinoLogger;
/** Paths pino redacts: passwords, keys, tokens, connection strings, authorization headers. */
export declare const REDACT_PATHS: readonly string[];
/** "postgres://user:secret@h/db" → "postgres://user:***@h/db". */
export declare function redactUrl(url: string): string;
/** pino JSON logger named after the service; level from TIDEMARK_LOG_LEVEL (default info). */
export declare function createLogger(service: string, env?: NodeJS.ProcessEnv): Logger;
