import { readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CronExpressionParser } from 'cron-parser';
import { SchemaError, TidemarkError, type Compression } from '@tidemark/contracts';
import type { StorageConfig } from '@tidemark/storage';
import { TidemarkConfig, type PostgresConnection, type Retention, type Target } from './schema.js';

export const DEFAULT_CONFIG_PATH = 'tidemark.yaml';

export interface LoadedConfig {
  readonly path: string;
  readonly config: TidemarkConfig;
}

/**
 * Loads and validates the YAML file named by TIDEMARK_CONFIG (default ./tidemark.yaml).
 * Relative paths inside it resolve against the file's directory. Errors name the field.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const path = resolve(env.TIDEMARK_CONFIG ?? DEFAULT_CONFIG_PATH);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new TidemarkError('CONFIG_INVALID', `cannot read config file ${path}: ${(cause as Error).message}; set TIDEMARK_CONFIG`, { cause });
  }
  return { path, config: parseConfig(text, path, env) };
}

export function parseConfig(text: string, path = DEFAULT_CONFIG_PATH, env: NodeJS.ProcessEnv = process.env): TidemarkConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (cause) {
    throw new TidemarkError('CONFIG_INVALID', `${path}: not valid YAML: ${(cause as Error).message}`, { cause });
  }
  let config: TidemarkConfig;
  try {
    config = TidemarkConfig.parse(withEngineScheduleKinds(raw));
  } catch (e) {
    if (e instanceof SchemaError) throw new TidemarkError('CONFIG_INVALID', `${path}: ${e.message}`, { cause: e });
    throw e;
  }
  const problems = crossCheck(config);
  if (problems.length > 0) throw new TidemarkError('CONFIG_INVALID', `${path}: ${problems.join('; ')}`);
  const base = dirname(path);
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  // Environment overrides for deployment (compose) without editing the file.
  const natsUrl = env.TIDEMARK_NATS_URL ?? config.nats.url;
  const withPasswordFile = <T extends { passwordFile?: string }>(conn: T): T =>
    conn.passwordFile ? { ...conn, passwordFile: rel(conn.passwordFile) } : conn;
  return {
    ...config,
    nats: { url: natsUrl },
    targets: config.targets.map((t) => {
      if (t.postgres) return { ...t, postgres: withPasswordFile(t.postgres) };
      const source = t.files?.source;
      if (t.files && source && source.kind !== 's3') return { ...t, files: { ...t.files, source: { ...source, path: rel(source.path) } } };
      return t;
    }),
    sandbox: config.sandbox && { ...config.sandbox, postgres: config.sandbox.postgres && withPasswordFile(config.sandbox.postgres) },
    storage: { ...config.storage, root: rel(config.storage.root) },
    pg: { ...config.pg, workDir: rel(config.pg.workDir) },
    files: { ...config.files, workDir: rel(config.files.workDir) },
    encryption: config.encryption && {
      ...config.encryption,
      keyFile: config.encryption.keyFile && rel(config.encryption.keyFile),
      oldKeyFiles: config.encryption.oldKeyFiles.map(rel),
    },
  };
}

/** A schedule of a files target without a kind takes "tree" (the schema's default, "logical", is for pg). */
function withEngineScheduleKinds(raw: unknown): unknown {
  const targets = (raw as { targets?: unknown } | null)?.targets;
  if (!Array.isArray(targets)) return raw;
  return {
    ...(raw as object),
    targets: targets.map((t: unknown) => {
      const target = t as { engine?: unknown; schedules?: unknown } | null;
      if (target?.engine !== 'files' || !Array.isArray(target.schedules)) return t;
      return { ...target, schedules: target.schedules.map((s: unknown) => (typeof s === 'object' && s !== null && !('kind' in s) ? { ...s, kind: 'tree' } : s)) };
    }),
  };
}

function crossCheck(config: TidemarkConfig): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  config.targets.forEach((t, i) => {
    const key = `${t.engine}/${t.name}`;
    if (seen.has(key)) problems.push(`targets[${i}].name: duplicate target ${key}`);
    seen.add(key);
    if (t.engine === 'pg' && !t.postgres) problems.push(`targets[${i}].postgres: is required for engine pg`);
    if (t.engine === 'qdrant' && !t.qdrant) problems.push(`targets[${i}].qdrant: is required for engine qdrant`);
    if (t.engine !== 'qdrant' && t.qdrant) problems.push(`targets[${i}].qdrant: is only for engine qdrant`);
    if (t.engine !== 'pg' && t.postgres) problems.push(`targets[${i}].postgres: is only for engine pg`);
    if (t.engine !== 'pg' && t.wal) problems.push(`targets[${i}].wal: is only for engine pg`);
    if (t.engine !== 'pg' && t.baseBackup) problems.push(`targets[${i}].baseBackup: is only for engine pg`);
    if (t.engine === 'files' && !t.files) problems.push(`targets[${i}].files: is required for engine files`);
    if (t.engine !== 'files' && t.files) problems.push(`targets[${i}].files: is only for engine files`);
    const ids = new Set<string>();
    t.schedules.forEach((s, j) => {
      if (ids.has(s.id)) problems.push(`targets[${i}].schedules[${j}].id: duplicate schedule id "${s.id}"`);
      ids.add(s.id);
      if ((t.engine === 'files') !== (s.kind === 'tree')) {
        problems.push(`targets[${i}].schedules[${j}].kind: ${t.engine === 'files' ? 'files targets take kind tree' : `kind tree is only for engine files`}`);
      }
      if (s.fullRehash !== undefined && t.engine !== 'files') problems.push(`targets[${i}].schedules[${j}].fullRehash: is only for engine files`);
      try {
        CronExpressionParser.parse(s.cron, { tz: s.timezone });
      } catch (e) {
        problems.push(`targets[${i}].schedules[${j}].cron: invalid cron expression "${s.cron}" (${(e as Error).message})`);
      }
    });
  });
  if (config.storage.type === 's3' && !config.storage.endpoint) problems.push('storage.endpoint: is required when storage.type is s3');
  return problems;
}

/** The replication slot a target's WAL receiver uses: configured, or tidemark_<target>. */
export const walSlotOf = (target: Target): string => target.wal?.slot ?? `tidemark_${target.name.replace(/-/g, '_')}`;

/** pg targets whose WAL is archived continuously. */
export const walTargets = (config: TidemarkConfig): Target[] => config.targets.filter((t) => t.engine === 'pg' && t.wal?.enabled === true);

export function findTarget(config: TidemarkConfig, engine: string, name: string): Target | undefined {
  return config.targets.find((t) => t.engine === engine && t.name === name);
}

/** The effective settings of a target, with the file's defaults applied. */
export function effectiveTarget(config: TidemarkConfig, target: Target): {
  compression: Compression | undefined;
  compressionLevel: number | undefined;
  encrypt: boolean;
  verify: boolean;
  retention: Retention;
} {
  return {
    compression: target.compression ?? config.defaults.compression,
    compressionLevel: target.compressionLevel,
    encrypt: target.encrypt ?? config.defaults.encrypt,
    verify: target.verify ?? config.defaults.verify,
    retention: target.retention ?? config.defaults.retention,
  };
}

/** Reads a secret named by the config (env var or file); undefined when neither is set. */
export function readSecret(ref: { passwordEnv?: string; passwordFile?: string }, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (ref.passwordFile) {
    try {
      return readFileSync(ref.passwordFile, 'utf8').trim();
    } catch (cause) {
      throw new TidemarkError('CONFIG_INVALID', `cannot read password file ${ref.passwordFile}: ${(cause as Error).message}`, { cause });
    }
  }
  if (ref.passwordEnv) {
    const value = env[ref.passwordEnv];
    if (value === undefined) throw new TidemarkError('CONFIG_INVALID', `environment variable ${ref.passwordEnv} (named by passwordEnv) is not set`);
    return value;
  }
  return undefined;
}

/** libpq environment for the pg tools: the password goes in PGPASSWORD, never on argv or in logs. */
export function libpqEnv(conn: PostgresConnection, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const password = readSecret(conn, env);
  return {
    PGHOST: conn.host,
    PGPORT: String(conn.port),
    PGUSER: conn.user,
    PGDATABASE: conn.database,
    ...(conn.sslmode ? { PGSSLMODE: conn.sslmode } : {}),
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
    PGAPPNAME: 'tidemark',
  };
}

export function storageConfig(config: TidemarkConfig, env: NodeJS.ProcessEnv = process.env): StorageConfig {
  const s = config.storage;
  if (s.type === 'fs') return { type: 'fs', root: s.root };
  const url = new URL(s.endpoint as string);
  const accessKey = env[s.accessKeyEnv];
  const secretKey = env[s.secretKeyEnv];
  if (!accessKey) throw new TidemarkError('CONFIG_INVALID', `environment variable ${s.accessKeyEnv} (storage.accessKeyEnv) is not set`);
  if (!secretKey) throw new TidemarkError('CONFIG_INVALID', `environment variable ${s.secretKeyEnv} (storage.secretKeyEnv) is not set`);
  return {
    type: 's3',
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    useSSL: url.protocol === 'https:',
    accessKey,
    secretKey,
    bucket: s.bucket,
    region: s.region,
    prefix: s.prefix,
    requestTimeoutMs: s.requestTimeoutSeconds * 1000,
    stallMs: s.stallSeconds * 1000,
  };
}

/** The resolved source of a files target: S3 credentials read from the variables it names (never from the file). */
export type FilesSourceOf =
  | { readonly kind: 'directory'; readonly path: string; readonly include?: readonly string[]; readonly exclude?: readonly string[] }
  | { readonly kind: 'ollama'; readonly path: string }
  | { readonly kind: 's3'; readonly endpoint: string; readonly region?: string; readonly bucket: string; readonly prefix?: string; readonly accessKey: string; readonly secretKey: string };

export function filesSourceOf(target: Target, env: NodeJS.ProcessEnv = process.env): FilesSourceOf {
  const source = target.files?.source;
  if (!source) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}" has no files source; set files.source`);
  if (source.kind !== 's3') return source;
  const { accessKeyEnv, secretKeyEnv, ...rest } = source;
  const accessKey = env[accessKeyEnv];
  const secretKey = env[secretKeyEnv];
  if (!accessKey) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}": environment variable ${accessKeyEnv} (files.source.accessKeyEnv) is not set`);
  if (!secretKey) throw new TidemarkError('CONFIG_INVALID', `target "${target.name}": environment variable ${secretKeyEnv} (files.source.secretKeyEnv) is not set`);
  return { ...rest, accessKey, secretKey };
}
