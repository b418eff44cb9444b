// No input may ever produce INTERNAL. Random values for every field of every command and catalog
// request, and random whole payloads (JSON scalars, msgpack of anything, bytes), go through the
// real decode + validate path and then through the agents' handlers and the catalog's request
// handlers with in-memory ports. Whatever is refused must be refused as the sender's mistake
// (COMMAND_INVALID, COMMAND_UNDECODABLE, TARGET_UNKNOWN, ARTIFACT_NOT_FOUND …) with a message,
// never as INTERNAL, which would page someone for a typing mistake.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CatalogDescribeRequest, CatalogListRequest, CatalogWalRequest, RequestBackup, RequestRestore, TidemarkError, decodeObject, encode, encodeJson,
  parseMessage, recoveryTargetOf, toErrorInfo, type ErrorInfo, type Schema,
} from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';
import { ArtifactStore, createMemoryBackend } from '@tidemark/storage';
import { loadKeyRing } from '@tidemark/pipeline';
import { guardPort } from '@tidemark/qdrant';
import { createLogger, type Outcome, type Settlement } from '@tidemark/runtime';
import { recordingPublisher, settled, testContext, type RecordingPublisher, fakeCluster, fakePort } from '@tidemark/testkit';
import { Catalog, describeArtifact, listArtifacts, summariseWalArchive } from '@tidemark/storage-service';
import { handleBackupRequested as pgBackup, handleRestoreRequested as pgRestore } from '@tidemark/pg-agent-service';
import { handleBackupRequested as qdrantBackup, handleRestoreRequested as qdrantRestore } from '@tidemark/qdrant-agent-service';

const RUNS = Number(process.env['TIDEMARK_PROPERTY_RUNS'] ?? 300);
const TEST_KEY_HEX = '11'.repeat(32);

// ---------------------------------------------------------------- generators

/** Strings a person or a buggy script might send, plus arbitrary ones. */
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom(
    '', ' ', 'main', 'demo', 'nosuch', 'logical', 'base', 'snapshot', 'export', 'incremental', 'latest', 'true', 'null', '0/3000060', 'ZZ/1',
    '2026-12-04 02:23:56.98+00', '2026-12-04T02:23:56.98+00', '2026-12-04T02:23:56.123456Z', '2026-11-22 10:15:00', '2026-13-45T99:99:99Z',
    '2026-02-30T00:00:00Z', '+275760-09-13T00:00:00.001Z', '-000001-01-01T00:00:00Z', '0000-00-00', 'yesterday', '12:00', 'NaN',
    '../../etc/passwd', 'a'.repeat(300), '\u0000', 'docs', '20261122T020000Z-1a2b3c4d5e',
  ),
);
const scalar = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 65535, 65536, 2 ** 31, Number.MAX_SAFE_INTEGER, 1e308, -0),
  fc.boolean(),
  fc.constant(null),
);
/** JSON-shaped values (what JSON can carry). */
const jsonish = fc.oneof(scalar, fc.array(scalar, { maxLength: 4 }), fc.dictionary(text, scalar, { maxKeys: 4 }));
/** What only msgpack can carry, too. */
const msgpackish = fc.oneof(jsonish, fc.uint8Array({ maxLength: 16 }), fc.date({ noInvalidDate: true }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }));

const POINT_IN_TIME_FIELDS = ['time', 'lsn', 'restorePoint', 'latest', 'inclusive'] as const;
const pointInTime = fc.oneof(
  msgpackish,
  fc.record(Object.fromEntries(POINT_IN_TIME_FIELDS.map((f) => [f, msgpackish])), { requiredKeys: [] }),
  fc.record({ time: fc.oneof(text, msgpackish) }),
  fc.record({ time: text, inclusive: fc.oneof(fc.boolean(), msgpackish) }),
  fc.record({ lsn: fc.oneof(text, fc.constantFrom('0/0', 'FFFFFFFF/FFFFFFFF', '0/3000060')) }),
  fc.record({ restorePoint: text }),
  fc.record({ latest: fc.oneof(fc.constant(true), msgpackish) }),
);

/**
 * Per field: a value of the right type most of the time (so that messages get past validation and
 * into the handlers), anything at all otherwise.
 */
const field = (plausible: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: plausible, weight: 12 }, { arbitrary: msgpackish, weight: 1 });
const isoTimes = fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), text);
const COMMON_FIELDS = {
  schemaVersion: field(fc.oneof({ arbitrary: fc.constant(1), weight: 8 }, { arbitrary: fc.constantFrom(2, 0, '1'), weight: 1 })),
  requestId: field(fc.oneof(fc.uuid(), text)),
  reason: field(text),
  requestedBy: field(text),
};
const BACKUP_FIELDS = {
  ...COMMON_FIELDS,
  kind: field(fc.constantFrom('logical', 'base', 'snapshot', 'export', 'incremental', 'wal', 'tree')),
  scheduleId: field(text),
  scheduledFor: field(isoTimes),
  verify: field(fc.boolean()),
  groupId: field(text),
  collections: field(fc.array(fc.oneof(text, fc.constantFrom('docs', 'chunks')), { maxLength: 3 })),
  includePayload: field(fc.boolean()),
};
/** Mostly one of the valid values, sometimes any text. */
const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 5 }, { arbitrary: text, weight: 1 });
const RESTORE_FIELDS = {
  ...COMMON_FIELDS,
  artifactId: field(mostly(fc.constantFrom('20261122T020000Z-1a2b3c4d5e', '20250102T030405Z-0123456789', 'nosuch'))),
  intoDatabase: field(mostly(fc.constantFrom('app', 'app_copy', '_x', 'a$b'))),
  overwrite: field(fc.boolean()),
  collection: field(mostly(fc.constantFrom('docs', 'chunks'))),
  intoCollection: field(mostly(fc.constantFrom('docs_copy', 'docs'))),
  intoDirectory: field(mostly(fc.constantFrom('/srv/pg/restored', '/'))),
  intoPort: field(fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.constantFrom(0, 1, 5544, 65535))),
  pointInTime: fc.oneof({ arbitrary: pointInTime, weight: 1 }, { arbitrary: fc.record({ time: mostly(fc.constantFrom(
    '2026-12-04 02:23:56.98+00', '2026-12-04T02:23:56.98+00', '2026-12-04T02:23:56.123456Z', '2026-11-22 10:15:00', '2026-12-04 02:23:56+0100',
  )) }), weight: 2 }),
};

/** A message with a random subset of the fields. */
const messageOf = (fields: Record<string, fc.Arbitrary<unknown>>) => fc.record(fields, { requiredKeys: [] });

const backupMessage = messageOf(BACKUP_FIELDS);
const restoreMessage = messageOf(RESTORE_FIELDS);

/** How the message travels: JSON text, msgpack, or (for the whole-payload property) anything. */
const encodings = fc.constantFrom('json', 'msgpack') as fc.Arbitrary<'json' | 'msgpack'>;
function bytesOf(value: unknown, how: 'json' | 'msgpack'): Uint8Array | undefined {
  if (how === 'msgpack') return encode(value);
  try {
    return encodeJson(value);
  } catch {
    return undefined; // a bigint: JSON cannot carry it
  }
}

const wholePayload = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom('null', 'true', 'false', '0', '-1.5e3', '"x"', '[]', '[null]', '{}', '{"kind":', 'nats pub', '\u00ff\u00fe').map((s) => new TextEncoder().encode(s)),
  msgpackish.map((v) => encode(v)),
  jsonish.map((v) => encodeJson(v)),
);

// ---------------------------------------------------------------- assertions

function assertNotInternal(info: ErrorInfo, what: string): void {
  if (info.code === 'INTERNAL') throw new Error(`${what} produced INTERNAL: ${info.message}`);
  expect(info.message.length, `${what}: ${info.code} without a message`).toBeGreaterThan(0);
}

/** The admission path of the consumer runner: decode (must be an object), then the schema. */
function admit<T>(schema: Schema<T>, bytes: Uint8Array): { ok: true; value: T } | { ok: false; error: ErrorInfo } {
  try {
    return { ok: true, value: parseMessage(schema, decodeObject(bytes)) };
  } catch (error) {
    return { ok: false, error: toErrorInfo(error) };
  }
}

/** What the consumer runner would make of a handler's outcome or throw, and every event the handler published. */
async function assertHandlerNeverInternal(run: () => Promise<Outcome>, publisher: RecordingPublisher, what: string): Promise<void> {
  let outcome: Settlement;
  try {
    outcome = await settled(run(), testContext('no-internal'));
  } catch (error) {
    if (error instanceof TidemarkError && error.code !== 'INTERNAL') return; // the runner terms or naks it with its code
    throw new Error(`${what}: the handler threw ${error instanceof TidemarkError ? `INTERNAL: ${error.message}` : String((error as Error)?.stack ?? error)}`);
  }
  if (outcome.type === 'reject') assertNotInternal(outcome.error, `${what} (rejected)`);
  if (outcome.type === 'term' && outcome.reason.startsWith('INTERNAL')) throw new Error(`${what}: terminated with ${outcome.reason}`);
  for (const { subject, event } of publisher.published) {
    const error = event['error'] as ErrorInfo | undefined;
    if (error) assertNotInternal(error, `${what} → ${subject}`);
  }
}

// ---------------------------------------------------------------- in-memory agents and catalog

const workDir = join(tmpdir(), `tidemark-property-${process.pid}`);
const PG_CONFIG = parseConfig(`
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true }
pg: { workDir: ${workDir} }
targets:
  - name: main
    engine: pg
    postgres: { host: 127.0.0.1, port: 5432, user: postgres, database: app }
`);
const QDRANT_CONFIG = parseConfig(`
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - name: vectors
    engine: qdrant
    qdrant: { url: http://127.0.0.1:1, incrementalField: updatedAt }
`);
const quiet = createLogger('property', { TIDEMARK_LOG_LEVEL: 'silent' });

async function pgDeps(options: { withBackup?: boolean } = {}) {
  const publisher = recordingPublisher();
  const cluster = fakeCluster();
  const result = {
    publisher,
    deps: {
      config: PG_CONFIG,
      store: new ArtifactStore(createMemoryBackend()),
      clusterFor: () => cluster,
      publisher,
      keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
      agent: { id: 'agent-property', version: '0.0.0' },
      clock: () => new Date('2026-12-04T03:00:00Z'),
    },
  };
  // A committed logical backup, so that restores get as far as restoring it.
  if (options.withBackup) await pgBackup(RequestBackup.parse({ requestId: 'seed' }), result.deps, testContext('backup.requested.pg.main'));
  publisher.published.length = 0;
  return result;
}

function qdrantDeps() {
  const publisher = recordingPublisher();
  const port = guardPort(fakePort(), quiet, 'property');
  return {
    publisher,
    port,
    deps: {
      config: QDRANT_CONFIG,
      store: new ArtifactStore(createMemoryBackend()),
      portFor: () => port,
      publisher,
      keys: loadKeyRing({ TIDEMARK_ENCRYPTION_KEY: TEST_KEY_HEX }),
      agent: { id: 'agent-property', version: '0.0.0' },
      clock: () => new Date('2026-12-04T03:00:00Z'),
    },
  };
}

/** The handlers must never touch a directory a random message names: restores go below workDir only. */
const withoutDirectory = <T extends { intoDirectory?: string | undefined }>(message: T): T => ({ ...message, intoDirectory: undefined });

// ---------------------------------------------------------------- properties

describe('no input produces INTERNAL', () => {
  /** Messages that got past validation into the handlers: the property is only worth something when many do. */
  let handled = 0;
  beforeEach(() => {
    handled = 0;
  });
  afterEach((context) => {
    if (context.task.name.includes('handlers') && context.task.result?.state === 'pass') expect(handled).toBeGreaterThan(RUNS / 10);
  });

  it('whole payloads of any shape are refused in the sender\'s terms, for every command and request schema', () => {
    const schemas: Array<[string, Schema<unknown>]> = [
      ['RequestBackup', RequestBackup], ['RequestRestore', RequestRestore],
      ['CatalogListRequest', CatalogListRequest], ['CatalogDescribeRequest', CatalogDescribeRequest], ['CatalogWalRequest', CatalogWalRequest],
    ];
    fc.assert(
      fc.property(wholePayload, (bytes) => {
        for (const [name, schema] of schemas) {
          const admitted = admit(schema, bytes);
          if (!admitted.ok) assertNotInternal(admitted.error, name);
        }
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('random values in every RequestBackup field, through validation and both agents\' backup handlers', async () => {
    await fc.assert(
      fc.asyncProperty(backupMessage, encodings, async (message, how) => {
        const bytes = bytesOf(message, how);
        if (!bytes) return;
        const admitted = admit(RequestBackup, bytes);
        if (!admitted.ok) return assertNotInternal(admitted.error, 'RequestBackup');
        handled++;
        const pg = await pgDeps();
        await assertHandlerNeverInternal(() => pgBackup(admitted.value, pg.deps, testContext('backup.requested.pg.main')), pg.publisher, 'pg backup');
        const qdrant = qdrantDeps();
        try {
          await assertHandlerNeverInternal(() => qdrantBackup(admitted.value, qdrant.deps, testContext('backup.requested.qdrant.vectors')), qdrant.publisher, 'qdrant backup');
        } finally {
          qdrant.port.shutdown();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('random values in every RequestRestore field (pointInTime.* included), through validation, the recovery target and both agents\' restore handlers', async () => {
    await fc.assert(
      fc.asyncProperty(restoreMessage, encodings, async (message, how) => {
        const bytes = bytesOf(message, how);
        if (!bytes) return;
        const admitted = admit(RequestRestore, bytes);
        if (!admitted.ok) return assertNotInternal(admitted.error, 'RequestRestore');
        if (admitted.value.pointInTime) {
          try {
            recoveryTargetOf(admitted.value.pointInTime);
          } catch (error) {
            assertNotInternal(toErrorInfo(error), 'recoveryTargetOf');
          }
        }
        const restore = withoutDirectory(admitted.value);
        handled++;
        const pg = await pgDeps({ withBackup: true });
        await assertHandlerNeverInternal(() => pgRestore(restore, pg.deps, testContext('restore.requested.pg.main')), pg.publisher, 'pg restore');
        const qdrant = qdrantDeps();
        try {
          await assertHandlerNeverInternal(() => qdrantRestore(restore, qdrant.deps, testContext('restore.requested.qdrant.vectors')), qdrant.publisher, 'qdrant restore');
        } finally {
          qdrant.port.shutdown();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('random catalog requests, through the storage service\'s request handlers', async () => {
    const catalog = new Catalog(new ArtifactStore(createMemoryBackend()));
    const walBackend = createMemoryBackend();
    const request = fc.oneof(
      messageOf({
        engine: field(fc.constantFrom('pg', 'qdrant', 'files', 'mysql')),
        target: field(fc.oneof(text, fc.constant('main'))),
        limit: field(fc.oneof(fc.integer(), fc.double())),
        artifactId: field(text),
      }),
      msgpackish,
    );
    await fc.assert(
      fc.asyncProperty(request, encodings, async (value, how) => {
        const bytes = bytesOf(value, how);
        if (!bytes) return;
        let decoded: unknown;
        try {
          decoded = decodeObject(bytes, undefined, 'request');
        } catch (error) {
          return assertNotInternal(toErrorInfo(error), 'catalog request');
        }
        handled++;
        const replies = [listArtifacts(decoded, catalog), await describeArtifact(decoded, catalog), await summariseWalArchive(decoded, walBackend)];
        for (const reply of replies) if ('error' in reply) assertNotInternal(reply.error, 'catalog reply');
      }),
      { numRuns: RUNS },
    );
  });
});
