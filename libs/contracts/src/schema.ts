// A tiny runtime schema kit: one declaration gives both the TypeScript type and a validator
// whose errors name the offending field (e.g. "targets[0].schedule: expected a string").
// It is used for wire messages and for configuration files alike.

export interface Issue {
  readonly path: string;
  readonly message: string;
}

export class SchemaError extends Error {
  constructor(readonly issues: readonly Issue[]) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '));
    this.name = 'SchemaError';
  }
}

export interface Schema<T> {
  /** Returns the parsed value (defaults applied) or throws SchemaError. */
  parse(input: unknown, path?: string): T;
  readonly optional?: boolean;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Check<T> = (input: unknown, path: string, issues: Issue[]) => T | undefined;

function make<T>(check: Check<T>, optional = false): Schema<T> {
  return {
    optional,
    parse(input: unknown, path = ''): T {
      const issues: Issue[] = [];
      const out = check(input, path, issues);
      if (issues.length > 0) throw new SchemaError(issues);
      return out as T;
    },
  };
}

/** Runs a schema, collecting issues instead of throwing (used by object/array to report all). */
function run<T>(schema: Schema<T>, input: unknown, path: string, issues: Issue[]): T | undefined {
  try {
    return schema.parse(input, path);
  } catch (e) {
    if (e instanceof SchemaError) {
      issues.push(...e.issues);
      return undefined;
    }
    throw e;
  }
}

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;

export function string(opts: { min?: number; max?: number; pattern?: RegExp; hint?: string } = {}): Schema<string> {
  return make((v, path, issues) => {
    if (typeof v !== 'string') {
      issues.push({ path, message: `expected a string, got ${describe(v)}` });
      return undefined;
    }
    if (opts.min !== undefined && v.length < opts.min) issues.push({ path, message: `must be at least ${opts.min} characters` });
    if (opts.max !== undefined && v.length > opts.max) issues.push({ path, message: `must be at most ${opts.max} characters` });
    if (opts.pattern && !opts.pattern.test(v)) issues.push({ path, message: opts.hint ?? `must match ${opts.pattern}` });
    return v;
  });
}

export function number(opts: { min?: number; max?: number; integer?: boolean } = {}): Schema<number> {
  return make((v, path, issues) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      issues.push({ path, message: `expected a number, got ${describe(v)}` });
      return undefined;
    }
    if (opts.integer && !Number.isInteger(v)) issues.push({ path, message: 'must be a whole number' });
    if (opts.min !== undefined && v < opts.min) issues.push({ path, message: `must be >= ${opts.min}` });
    if (opts.max !== undefined && v > opts.max) issues.push({ path, message: `must be <= ${opts.max}` });
    return v;
  });
}

export function boolean(): Schema<boolean> {
  return make((v, path, issues) => {
    if (typeof v !== 'boolean') issues.push({ path, message: `expected true or false, got ${describe(v)}` });
    return v as boolean;
  });
}

export function literal<const T extends string | number | boolean>(value: T): Schema<T> {
  return make((v, path, issues) => {
    if (v !== value) issues.push({ path, message: `expected ${JSON.stringify(value)}, got ${JSON.stringify(v)}` });
    return value;
  });
}

export function oneOf<const T extends readonly string[]>(values: T): Schema<T[number]> {
  return make((v, path, issues) => {
    if (typeof v !== 'string' || !values.includes(v)) {
      issues.push({ path, message: `expected one of ${values.join(', ')}, got ${JSON.stringify(v)}` });
      return undefined;
    }
    return v as T[number];
  });
}

/** ISO-8601 timestamp string. */
export function isoDate(): Schema<string> {
  return make((v, path, issues) => {
    if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) {
      issues.push({ path, message: `expected an ISO-8601 time, got ${JSON.stringify(v)}` });
      return undefined;
    }
    return v;
  });
}

/** A string that `problem` accepts: it returns why the value is wrong, or undefined. */
export function checkedString(problem: (value: string) => string | undefined): Schema<string> {
  return make((v, path, issues) => {
    if (typeof v !== 'string') {
      issues.push({ path, message: `expected a string, got ${describe(v)}` });
      return undefined;
    }
    const wrong = problem(v);
    if (wrong !== undefined) issues.push({ path, message: wrong });
    return v;
  });
}

export function array<T>(item: Schema<T>, opts: { max?: number } = {}): Schema<T[]> {
  return make((v, path, issues) => {
    if (!Array.isArray(v)) {
      issues.push({ path, message: `expected an array, got ${describe(v)}` });
      return undefined;
    }
    if (opts.max !== undefined && v.length > opts.max) issues.push({ path, message: `must have at most ${opts.max} items` });
    return v.map((x, i) => run(item, x, `${path}[${i}]`, issues) as T);
  });
}

export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  return make((v, path, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      issues.push({ path, message: `expected an object, got ${describe(v)}` });
      return undefined;
    }
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = run(value, x, path ? `${path}.${k}` : k, issues) as T;
    return out;
  });
}

/** Any JSON-ish value, passed through untouched. */
export function unknownValue(): Schema<unknown> {
  return make((v) => v);
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return make((v, path, issues) => (v === null ? null : run(inner, v, path, issues)));
}

export function optional<T>(inner: Schema<T>): Schema<T | undefined> {
  return make((v, path, issues) => (v === undefined || v === null ? undefined : run(inner, v, path, issues)), true);
}

export function withDefault<T>(inner: Schema<T>, fallback: NoInfer<T> | (() => NoInfer<T>)): Schema<T> {
  return make(
    (v, path, issues) =>
      v === undefined || v === null
        ? typeof fallback === 'function'
          ? (fallback as () => T)()
          : fallback
        : run(inner, v, path, issues),
    true,
  );
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: undefined extends Infer<S[K]> ? K : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjectOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> };

/**
 * A plain object. Unknown keys are rejected when `strict` (config files, where a typo should
 * fail loudly) and dropped otherwise (wire messages, so newer producers stay compatible).
 */
export function object<S extends Shape>(shape: S, opts: { strict?: boolean } = {}): Schema<{ [K in keyof ObjectOf<S>]: ObjectOf<S>[K] }> {
  return make<{ [K in keyof ObjectOf<S>]: ObjectOf<S>[K] }>((v, path, issues) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      issues.push({ path, message: `expected an object, got ${describe(v)}` });
      return undefined;
    }
    const input = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [key, schema] of Object.entries(shape)) {
      const fieldPath = path ? `${path}.${key}` : key;
      if (!(key in input) && !schema.optional) {
        issues.push({ path: fieldPath, message: 'is required' });
        continue;
      }
      const parsed = run(schema, input[key], fieldPath, issues);
      if (parsed !== undefined) out[key] = parsed;
    }
    if (opts.strict) {
      for (const key of Object.keys(input)) {
        // Own keys only: `in` would take "toString" or "constructor" for declared fields.
        if (!Object.hasOwn(shape, key)) issues.push({ path: path ? `${path}.${key}` : key, message: 'is not a known field' });
      }
    }
    return out as never;
  });
}
