// Command-line parsing with plain process.argv: a small declarative table of options per command.
import { ARTIFACT_KINDS, ENGINES, LSN_PATTERN, TARGET_NAME_HINT, isEngine, isTargetName, parsePointInTimeText, type ArtifactKind, type Engine, type PointInTime } from '@tidemark/contracts';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface GlobalOptions {
  readonly natsUrl: string;
  readonly json: boolean;
  /** Seconds; each command has its own default when omitted. */
  readonly timeoutSeconds: number | undefined;
}

export type Command =
  | { readonly name: 'help'; readonly topic?: string }
  | {
      readonly name: 'backup';
      readonly engine: Engine;
      readonly target: string;
      readonly kind?: ArtifactKind;
      readonly reason?: string;
      /** false with --no-verify; otherwise the target's own setting applies. */
      readonly verify?: false;
      /** qdrant: --collection a,b */
      readonly collections?: readonly string[];
      /** files: --full-rehash reads every file again instead of trusting the parent snapshot. */
      readonly fullRehash?: true;
      readonly wait: boolean;
    }
  | {
      readonly name: 'restore';
      readonly engine: Engine;
      readonly target: string;
      readonly artifactId?: string;
      /** --into: the database (pg) or collection (qdrant) to restore into. */
      readonly intoDatabase?: string;
      /** pg --to: recover a base backup and the archived WAL to this point (a physical restore). */
      readonly pointInTime?: PointInTime;
      /** pg physical restores: --into <dir>, <port> or <dir>:<port>. */
      readonly intoDirectory?: string;
      readonly intoPort?: number;
      /** qdrant: whose newest verified artifact to restore. */
      readonly collection?: string;
      /** files: --path (repeatable): only these paths of the snapshot. */
      readonly paths?: readonly string[];
      /** files from an s3 source: --into-bucket and --into-prefix. */
      readonly intoBucket?: string;
      readonly intoPrefix?: string;
      readonly overwrite: boolean;
      readonly reason?: string;
      readonly wait: boolean;
    }
  | { readonly name: 'list'; readonly engine?: Engine; readonly target?: string; readonly limit?: number }
  /** files: the entries of a snapshot (default the newest) under a path (default its root). */
  | { readonly name: 'ls'; readonly engine: 'files'; readonly target: string; readonly artifactId?: string; readonly path?: string; readonly recursive: boolean; readonly limit?: number }
  | { readonly name: 'status' }
  /** Prints events as they are published; no subject means every Tidemark stream subject. */
  | { readonly name: 'watch'; readonly subject?: string; readonly count?: number };

export type ParseResult =
  | { readonly ok: true; readonly globals: GlobalOptions; readonly command: Command }
  | { readonly ok: false; readonly error: string };

/** `repeatable` options may be given several times; their values are kept in order. */
type OptionSpec = { readonly takesValue: boolean; readonly repeatable?: boolean };
const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  '--nats': { takesValue: true },
  '--json': { takesValue: false },
  '--timeout': { takesValue: true },
  '--help': { takesValue: false },
};
const COMMAND_OPTIONS: Record<string, Record<string, OptionSpec>> = {
  help: {},
  backup: {
    '--kind': { takesValue: true }, '--reason': { takesValue: true }, '--no-verify': { takesValue: false }, '--wait': { takesValue: false },
    '--collection': { takesValue: true }, '--full-rehash': { takesValue: false },
  },
  restore: {
    '--artifact': { takesValue: true }, '--into': { takesValue: true }, '--overwrite': { takesValue: false }, '--collection': { takesValue: true },
    '--reason': { takesValue: true }, '--wait': { takesValue: false }, '--to': { takesValue: true }, '--exclusive': { takesValue: false },
    '--snapshot': { takesValue: true }, '--path': { takesValue: true, repeatable: true }, '--into-bucket': { takesValue: true }, '--into-prefix': { takesValue: true },
  },
  list: { '--limit': { takesValue: true } },
  ls: { '--recursive': { takesValue: false }, '--limit': { takesValue: true } },
  status: {},
  watch: { '--count': { takesValue: true } },
};
export const COMMANDS = Object.keys(COMMAND_OPTIONS);

class UsageError extends Error {}

export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): ParseResult {
  try {
    return parse(argv, env);
  } catch (error) {
    if (error instanceof UsageError) return { ok: false, error: error.message };
    throw error;
  }
}

function parse(argv: readonly string[], env: NodeJS.ProcessEnv): ParseResult {
  const positionals: string[] = [];
  const options = new Map<string, string | true>();
  const repeated = new Map<string, string[]>();
  let commandName: string | undefined;

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (token === '-h') {
      options.set('--help', true);
      continue;
    }
    if (!token.startsWith('--')) {
      if (commandName === undefined) commandName = token;
      else positionals.push(token);
      continue;
    }
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const spec = GLOBAL_OPTIONS[name] ?? (commandName !== undefined ? COMMAND_OPTIONS[commandName]?.[name] : undefined);
    if (!spec) {
      const where = commandName && COMMAND_OPTIONS[commandName] ? ` for "${commandName}"` : '';
      throw new UsageError(`unknown option ${name}${where}; see "tidemark help${commandName && COMMAND_OPTIONS[commandName] ? ` ${commandName}` : ''}"`);
    }
    if (spec.takesValue) {
      const value = eq === -1 ? argv[++i] : token.slice(eq + 1);
      if (value === undefined || (eq === -1 && value.startsWith('--'))) throw new UsageError(`option ${name} needs a value`);
      if (spec.repeatable) repeated.set(name, [...(repeated.get(name) ?? []), value]);
      options.set(name, value);
    } else {
      if (eq !== -1) throw new UsageError(`option ${name} takes no value`);
      options.set(name, true);
    }
  }

  const globals: GlobalOptions = {
    natsUrl: stringOption(options, '--nats') ?? env.TIDEMARK_NATS_URL ?? DEFAULT_NATS_URL,
    json: options.has('--json'),
    timeoutSeconds: numberOption(options, '--timeout', { min: 0.001 }),
  };
  if (options.has('--help') || commandName === undefined) {
    return { ok: true, globals, command: commandName === undefined || commandName === 'help' ? { name: 'help' } : { name: 'help', topic: commandName } };
  }
  if (!(commandName in COMMAND_OPTIONS)) throw new UsageError(`unknown command "${commandName}" (known: ${COMMANDS.join(', ')}); see "tidemark help"`);

  switch (commandName) {
    case 'help':
      expectAtMost(positionals, 1, 'help [command]');
      return { ok: true, globals, command: positionals[0] === undefined ? { name: 'help' } : { name: 'help', topic: positionals[0] } };
    case 'backup': {
      const { engine, target } = scope(positionals, 'backup <engine> <target>');
      const kind = stringOption(options, '--kind');
      const collections = stringOption(options, '--collection')?.split(',').filter(Boolean);
      if (kind !== undefined && !(ARTIFACT_KINDS as readonly string[]).includes(kind)) {
        throw new UsageError(`unknown kind "${kind}" (known: ${ARTIFACT_KINDS.join(', ')})`);
      }
      return {
        ok: true,
        globals,
        command: {
          name: 'backup', engine, target, wait: options.has('--wait'),
          ...(kind !== undefined ? { kind: kind as ArtifactKind } : {}),
          ...optionalText(options, '--reason', 'reason'),
          ...(options.has('--no-verify') ? { verify: false as const } : {}),
          ...(collections !== undefined ? { collections } : {}),
          ...(options.has('--full-rehash') ? { fullRehash: filesOnly(engine, '--full-rehash') } : {}),
        },
      };
    }
    case 'restore': {
      const { engine, target } = scope(positionals, 'restore <engine> <target>');
      const to = stringOption(options, '--to');
      if ((to !== undefined || options.has('--exclusive')) && engine !== 'pg') throw new UsageError('--to and --exclusive are for pg targets (point-in-time recovery)');
      if (options.has('--exclusive') && to === undefined) throw new UsageError('--exclusive needs --to <time|LSN>');
      const into = stringOption(options, '--into');
      const paths = repeated.get('--path');
      for (const option of ['--path', '--into-bucket', '--into-prefix']) if (options.has(option)) filesOnly(engine, option);
      if (options.has('--snapshot') && options.has('--artifact')) throw new UsageError('--snapshot and --artifact name the same thing: give one');
      if (engine === 'files' && into !== undefined && !into.startsWith('/')) {
        throw new UsageError(`--into "${into}": give an absolute directory on the files-agent's host (e.g. /srv/restore)`);
      }
      if (engine === 'files' && into !== undefined && options.has('--into-bucket')) throw new UsageError('--into (a directory) and --into-bucket (an S3 bucket) exclude each other');
      return {
        ok: true,
        globals,
        command: {
          name: 'restore', engine, target, wait: options.has('--wait'), overwrite: options.has('--overwrite'),
          ...optionalText(options, '--artifact', 'artifactId'),
          ...optionalText(options, '--snapshot', 'artifactId'),
          ...(into === undefined ? {} : engine === 'pg' ? pgInto(into) : engine === 'files' ? { intoDirectory: into } : { intoDatabase: into }),
          ...(paths !== undefined ? { paths } : {}),
          ...optionalText(options, '--into-bucket', 'intoBucket'),
          ...optionalText(options, '--into-prefix', 'intoPrefix'),
          ...(to === undefined ? {} : { pointInTime: parsePointInTime(to, options.has('--exclusive')) }),
          ...optionalText(options, '--collection', 'collection'),
          ...optionalText(options, '--reason', 'reason'),
        },
      };
    }
    case 'list': {
      expectAtMost(positionals, 2, 'list [<engine> [<target>]]');
      const [engine, target] = positionals;
      if (engine !== undefined && !isEngine(engine)) throw new UsageError(`unknown engine "${engine}" (known: ${ENGINES.join(', ')})`);
      if (target !== undefined && !isTargetName(target)) throw new UsageError(`invalid target "${target}": ${TARGET_NAME_HINT}`);
      const limit = numberOption(options, '--limit', { min: 1, integer: true });
      return {
        ok: true,
        globals,
        command: { name: 'list', ...(engine !== undefined ? { engine } : {}), ...(target !== undefined ? { target } : {}), ...(limit !== undefined ? { limit } : {}) },
      };
    }
    case 'ls': {
      const [engine, target, ...rest] = positionals;
      if (engine === undefined || target === undefined) throw new UsageError('missing arguments: tidemark ls files <target> [<snapshot>] [<path>]');
      if (engine !== 'files') throw new UsageError(`ls lists the paths of files snapshots: tidemark ls files <target> (for ${engine} artifacts use "tidemark list ${engine}")`);
      if (!isTargetName(target)) throw new UsageError(`invalid target "${target}": ${TARGET_NAME_HINT}`);
      // A snapshot id looks like 20261122T020000Z-1a2b3c4d5e; anything else is a path.
      const artifactId = rest[0] !== undefined && SNAPSHOT_ID.test(rest[0]) ? rest.shift() : undefined;
      expectAtMost(rest, 1, 'ls files <target> [<snapshot>] [<path>]');
      const limit = numberOption(options, '--limit', { min: 1, integer: true });
      return {
        ok: true,
        globals,
        command: {
          name: 'ls', engine, target, recursive: options.has('--recursive'),
          ...(artifactId !== undefined ? { artifactId } : {}),
          ...(rest[0] !== undefined ? { path: rest[0] } : {}),
          ...(limit !== undefined ? { limit } : {}),
        },
      };
    }
    case 'watch': {
      expectAtMost(positionals, 1, 'watch [<subject>]');
      const [subject] = positionals;
      // A NATS subject: dot-separated tokens without spaces; * and > are wildcards.
      if (subject !== undefined && !/^[^\s.]+(\.[^\s.]+)*$/.test(subject)) {
        throw new UsageError(`"${subject}" is not a NATS subject (tokens separated by dots, * and > as wildcards), e.g. 'alert.>' or 'backup.*.pg.main'`);
      }
      const count = numberOption(options, '--count', { min: 1, integer: true });
      return { ok: true, globals, command: { name: 'watch', ...(subject !== undefined ? { subject } : {}), ...(count !== undefined ? { count } : {}) } };
    }
    default:
      expectAtMost(positionals, 0, 'status');
      return { ok: true, globals, command: { name: 'status' } };
  }
}

/**
 * pg --into: an absolute directory, a port, or <directory>:<port> name where a physical restore
 * goes; anything else is a database for a logical restore. Database names never start with "/"
 * or a digit, so the forms cannot be confused.
 */
function pgInto(into: string): { intoDatabase: string } | { intoDirectory?: string; intoPort?: number } {
  const port = (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1 || value > 65535) throw new UsageError(`--into: ${text} is not a port (1-65535)`);
    return value;
  };
  if (/^\d+$/.test(into)) return { intoPort: port(into) };
  const both = /^(\/.*):(\d+)$/.exec(into);
  if (both) return { intoDirectory: both[1] as string, intoPort: port(both[2] as string) };
  if (into.startsWith('/')) return { intoDirectory: into };
  return { intoDatabase: into };
}

const TO_HINT = 'latest, an LSN (0/3000060), a time ("2026-11-22 10:15:00", "2026-11-22T10:15:00.5+01", UTC unless it has an offset) or restore-point:<name>';

/**
 * --to: "latest", an LSN, "restore-point:<name>" or a time. A time without an offset is UTC (so
 * the same command means the same moment wherever it is typed); it is sent as ISO 8601 in UTC.
 */
export function parsePointInTime(text: string, exclusive = false): PointInTime {
  const value = text.trim();
  let point: PointInTime;
  if (value === 'latest') point = { latest: true };
  else if (value.startsWith('restore-point:')) {
    const name = value.slice('restore-point:'.length);
    if (name === '' || name.length > 63) throw new UsageError(`--to restore-point:<name> needs a name of 1 to 63 characters`);
    point = { restorePoint: name };
  } else if (LSN_PATTERN.test(value)) point = { lsn: value.toUpperCase() };
  else {
    // The forms the agent accepts (ISO 8601, RFC 3339, PostgreSQL's text), sent in UTC to the microsecond.
    const parsed = parsePointInTimeText(value);
    if (parsed === undefined) throw new UsageError(`--to "${text}" is not a recovery target: use ${TO_HINT}`);
    point = { time: parsed.iso };
  }
  if (exclusive) {
    if (point.time === undefined && point.lsn === undefined) throw new UsageError('--exclusive applies to a time or an LSN');
    point = { ...point, inclusive: false };
  }
  return point;
}

/** What artifact ids look like (newArtifactId): a UTC time, then a random part. */
const SNAPSHOT_ID = /^\d{8}T\d{6}Z-[A-Za-z0-9_.-]+$/;

function filesOnly(engine: Engine, option: string): true {
  if (engine !== 'files') throw new UsageError(`${option} is for files targets`);
  return true;
}

function scope(positionals: string[], usage: string): { engine: Engine; target: string } {
  const [engine, target] = positionals;
  if (engine === undefined || target === undefined) throw new UsageError(`missing arguments: tidemark ${usage}`);
  expectAtMost(positionals, 2, usage);
  if (!isEngine(engine)) throw new UsageError(`unknown engine "${engine}" (known: ${ENGINES.join(', ')})`);
  if (!isTargetName(target)) throw new UsageError(`invalid target "${target}": ${TARGET_NAME_HINT}`);
  return { engine, target };
}

function expectAtMost(positionals: string[], count: number, usage: string): void {
  if (positionals.length > count) throw new UsageError(`unexpected argument "${positionals[count]}": tidemark ${usage}`);
}

function stringOption(options: Map<string, string | true>, name: string): string | undefined {
  const value = options.get(name);
  return typeof value === 'string' ? value : undefined;
}

function optionalText<K extends string>(options: Map<string, string | true>, name: string, key: K): { [P in K]?: string } {
  const value = stringOption(options, name);
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

function numberOption(options: Map<string, string | true>, name: string, rule: { min: number; integer?: boolean }): number | undefined {
  const raw = stringOption(options, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < rule.min || (rule.integer && !Number.isInteger(value))) {
    throw new UsageError(`option ${name} needs a ${rule.integer ? 'whole ' : ''}number of at least ${rule.min}, got "${raw}"`);
  }
  return value;
}

export const USAGE = `tidemark: backup and recovery over NATS

usage: tidemark [--nats <url>] [--json] [--timeout <seconds>] <command> [arguments]

commands:
  backup <engine> <target> [--kind <kind>] [--collection <a,b>] [--full-rehash] [--reason "…"] [--no-verify] [--wait]
      request a backup; prints the request id. --wait follows it until verified, with progress
      (files and bytes done, rate, ETA) on stderr. files: --full-rehash reads every file again.
  restore <engine> <target> [--artifact <id>] [--collection <name>] [--into <db|collection>] [--overwrite] [--reason "…"] [--wait]
      request a restore (default: the newest verified artifact into a new database).
  restore pg <target> --to <latest|LSN|time|restore-point:NAME> [--exclusive] [--into <dir|port|dir:port>] [--artifact <id>] [--overwrite] [--wait]
      point-in-time recovery: the newest base backup before the target plus the archived WAL,
      recovered into a new data directory (default: under the agent's pg.workDir) and started
      as a promoted server on a free port (or the one given) on the agent's host; it keeps
      running. A time without an offset is UTC ("2026-11-22 10:15:00"; "…+01:00" for others).
      --exclusive stops just before the target. --overwrite restores over a non-empty directory,
      which is moved aside to <dir>.pre_restore_<time> first (refused while a server runs in it).
      --wait prints the RTO split (download, WAL replay, start) and where the server runs.
  restore files <target> [--snapshot <id>] [--path <p>]… [--into <dir> | --into-bucket <b> [--into-prefix <p>]] [--overwrite] [--wait]
      restore a files snapshot (default the newest verified) or only the given paths, into a new
      directory on the files-agent's host (default under its work dir) or the one given; an s3
      target's files go to a bucket and prefix. --overwrite replaces an existing directory, which
      is moved aside until the restore succeeded (and back if it fails).
  list [<engine> [<target>]] [--limit <n>]
      list committed artifacts, newest first.
  ls files <target> [<snapshot>] [<path>] [--recursive] [--limit <n>]
      the paths of a files snapshot (default the newest) under a path: mode, size, mtime, path.
  status
      the newest artifact of every target, its verification and age.
  watch [<subject>] [--count <n>]
      print events as they are published, decoded and one per line (default: every Tidemark
      subject; e.g. 'alert.>' or 'backup.*.pg.main'). Runs until Ctrl-C, --timeout or --count;
      --json prints one {"subject","event"} document per line.
  help [<command>]

global options:
  --nats <url>       NATS server (default $TIDEMARK_NATS_URL or ${DEFAULT_NATS_URL})
  --json             print one JSON document instead of text
  --timeout <s>      how long to wait (default 5 for list/status, 3600 for --wait, no limit for watch)

exit codes: 0 success, 1 failed (backup, restore, verification, or a target whose newest
artifact failed verification), 2 usage error or timeout.
`;
