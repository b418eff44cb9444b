// Structured JSON logs. Secrets never reach a log line: pino removes the fields named below at
// the top level and up to three levels down, and connection strings are logged only through
// redactUrl.
import { pino, type DestinationStream, type LoggerOptions, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

const SECRET_KEYS = [
  'password', 'pass', 'passwd', 'secret', 'secretKey', 'secret_key', 'secretAccessKey', 'accessKey',
  'accessKeyId', 'access_key', 'apiKey', 'api_key', 'apikey', 'privateKey', 'private_key',
  'encryptionKey', 'token', 'accessToken', 'refreshToken', 'authToken', 'auth_token',
  'authorization', 'Authorization', 'cookie', 'PGPASSWORD', 'creds', 'credentials', 'nkey', 'jwt',
] as const;

// Fields that hold connection strings keep their host and user (useful when debugging) and lose
// only the password.
const URL_KEYS = ['url', 'uri', 'dsn', 'connectionString', 'connection_string', 'databaseUrl', 'DATABASE_URL', 'endpoint', 'servers'] as const;
const URL_KEY_SET = new Set<string>(URL_KEYS);

function pathsFor(key: string): string[] {
  return [key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`];
}

/** Paths pino redacts: passwords, keys, tokens, connection strings, authorization headers. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  ...SECRET_KEYS.flatMap(pathsFor),
  ...URL_KEYS.flatMap(pathsFor),
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
]);

/** "postgres://user:secret@h/db" → "postgres://user:***@h/db". Also hides password= query parameters. */
export function redactUrl(url: string): string {
  return url
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):[^@/\s]*@/gi, '$1:***@')
    .replace(/([?&;\s](?:password|pass|secret|token|sslpassword|api[_-]?key)=)[^&;\s]*/gi, '$1***');
}

function censor(value: unknown, path: string[]): unknown {
  const field = path[path.length - 1] ?? '';
  if (!URL_KEY_SET.has(field)) return '[redacted]';
  if (typeof value === 'string') return redactUrl(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' ? redactUrl(v) : '[redacted]'));
  return '[redacted]';
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** pino JSON logger named after the service; level from TIDEMARK_LOG_LEVEL (default info). */
export function createLogger(service: string, env: NodeJS.ProcessEnv = process.env, destination?: DestinationStream): Logger {
  const requested = (env['TIDEMARK_LOG_LEVEL'] ?? 'info').toLowerCase();
  const level = LEVELS.has(requested) ? requested : 'info';
  const options: LoggerOptions = {
    name: service,
    level,
    redact: { paths: [...REDACT_PATHS], censor },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
