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
      readonly overwrite: boolean;
      readonly reason?: string;
      readonly wait: boolean;
    }
  | { readonly name: 'list'; readonly engine?: Engine; readonly target?: string; readonly limit?: number }
  | { readonly name: 'status' }
  /** Prints events as they are published; no subject means every Tidemark stream subject. */
  | { readonly name: 'watch'; readonly subject?: string; readonly count?: number };

export type ParseResult =
  | { readonly ok: true; readonly globals: GlobalOptions; readonly command: Command }
  | { readonly ok: false; readonly error: string };

type OptionSpec = { readonly takesValue: boolean };
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
    '--collection': { takesValue: true },
  },
  restore: {
    '--artifact': { takesValue: true }, '--into': { takesValue: true }, '--overwrite': { takesValue: false }, '--collection': { takesValue: true },
    '--reason': { takesValue: true }, '--wait': { takesValue: false }, '--to': { takesValue: true }, '--exclusive': { takesValue: false },
  },
  list: { '--limit': { takesValue: true } },
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
        },
      };
    }
    case 'restore': {
      const { engine, target } = scope(positionals, 'restore <engine> <target>');
      const to = stringOption(options, '--to');
      if ((to !== undefined || options.has('--exclusive')) && engine !== 'pg') throw new UsageError('--to and --exclusive are for pg targets (point-in-time recovery)');
      if (options.has('--exclusive') && to === undefined) throw new UsageError('--exclusive needs --to <time|LSN>');
      const into = stringOption(options, '--into');
      return {
        ok: true,
        globals,
        command: {
          name: 'restore', engine, target, wait: options.has('--wait'), overwrite: options.has('--overwrite'),
          ...optionalText(options, '--artifact', 'artifactId'),
          ...(into === undefined ? {} : engine === 'pg' ? pgInto(into) : { intoDatabase: into }),
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
  backup <engine> <target> [--kind <kind>] [--collection <a,b>] [--reason "…"] [--no-verify] [--wait]
      request a backup; prints the request id. --wait follows it until verified.
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
  list [<engine> [<target>]] [--limit <n>]
      list committed artifacts, newest first.
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
