// Commands are typed by people and scripts: a short one gets its defaults, and a wrong one is a
// COMMAND_INVALID naming the field (never INTERNAL later in an agent).
import { describe, expect, it } from 'vitest';
import { RequestBackup, RequestRestore, TidemarkError, parseMessage, type Schema } from '../src/index.js';

function refusal(schema: Schema<unknown>, command: unknown): TidemarkError {
  try {
    parseMessage(schema, command);
  } catch (error) {
    if (error instanceof TidemarkError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(command)} to be refused`);
}

describe('RequestBackup', () => {
  it.each([
    ['the empty command', {}, { schemaVersion: 1 }],
    ['null fields read as absent', { kind: null, reason: null }, { schemaVersion: 1 }],
    ['every field', {
      schemaVersion: 1, requestId: 'r-1', kind: 'base', reason: 'before the upgrade', requestedBy: 'cli:ops@host', scheduleId: 'nightly',
      scheduledFor: '2026-11-22T02:00:00Z', verify: false, groupId: 'g-1', collections: ['docs'], includePayload: false,
    }, {
      schemaVersion: 1, requestId: 'r-1', kind: 'base', reason: 'before the upgrade', requestedBy: 'cli:ops@host', scheduleId: 'nightly',
      scheduledFor: '2026-11-22T02:00:00Z', verify: false, groupId: 'g-1', collections: ['docs'], includePayload: false,
    }],
    // Newer senders may add fields: a command is not refused for them.
    ['unknown fields are dropped', { kind: 'logical', priority: 'high' }, { schemaVersion: 1, kind: 'logical' }],
  ])('accepts %s', (_name, command, parsed) => {
    expect(parseMessage(RequestBackup, command)).toEqual(parsed);
  });

  it.each([
    ['an unknown kind', { kind: 'full' }, 'COMMAND_INVALID', 'kind: expected one of logical, base, wal, snapshot, export, incremental, tree, got "full"'],
    ['an empty requestId', { requestId: '' }, 'COMMAND_INVALID', 'requestId: must be at least 1 characters'],
    ['a long requestId', { requestId: 'r'.repeat(201) }, 'COMMAND_INVALID', 'requestId: must be at most 200 characters'],
    ['a verify that is not a boolean', { verify: 'yes' }, 'COMMAND_INVALID', 'verify: expected true or false, got string'],
    ['a scheduledFor that is not a time', { scheduledFor: 'tonight' }, 'COMMAND_INVALID', 'scheduledFor: expected an ISO-8601 time, got "tonight"'],
    ['an empty collection name', { collections: ['docs', ''] }, 'COMMAND_INVALID', 'collections[1]: must be at least 1 characters'],
    ['a reason too long', { reason: 'x'.repeat(2001) }, 'COMMAND_INVALID', 'reason: must be at most 2000 characters'],
    ['a command that is not an object', ['backup'], 'COMMAND_INVALID', 'expected an object, got an array'],
    ['another schema version', { schemaVersion: 2 }, 'COMMAND_UNKNOWN_VERSION', 'schemaVersion 2 is not supported (this build speaks 1)'],
    ['every problem at once', { kind: 'full', verify: 1 }, 'COMMAND_INVALID', 'kind: expected one of logical, base, wal, snapshot, export, incremental, tree, got "full"; verify: expected true or false, got number'],
  ])('refuses %s', (_name, command, code, message) => {
    const error = refusal(RequestBackup, command);
    expect({ code: error.code, message: error.message, retryable: error.retryable }).toEqual({ code, message, retryable: false });
  });
});

describe('RequestRestore', () => {
  it.each([
    ['the empty command: overwrite defaults to false', {}, { schemaVersion: 1, overwrite: false }],
    ['a logical restore', { artifactId: '20261122T020000Z-1a2b3c4d5e', intoDatabase: 'app_copy', overwrite: true },
      { schemaVersion: 1, artifactId: '20261122T020000Z-1a2b3c4d5e', intoDatabase: 'app_copy', overwrite: true }],
    ['a point in time', { pointInTime: { lsn: '0/3000060', inclusive: false }, intoDirectory: '/srv/pg/restored', intoPort: 55432 },
      { schemaVersion: 1, overwrite: false, pointInTime: { lsn: '0/3000060', inclusive: false }, intoDirectory: '/srv/pg/restored', intoPort: 55432 }],
    ['the latest point', { pointInTime: { latest: true } }, { schemaVersion: 1, overwrite: false, pointInTime: { latest: true } }],
    ['a qdrant restore', { collection: 'docs', intoCollection: 'docs_copy' }, { schemaVersion: 1, overwrite: false, collection: 'docs', intoCollection: 'docs_copy' }],
  ])('accepts %s', (_name, command, parsed) => {
    expect(parseMessage(RequestRestore, command)).toEqual(parsed);
  });

  it.each([
    ['an artifact id with a path in it', { artifactId: '../etc/passwd' }, 'artifactId: expected an artifact id such as 20261122T020000Z-1a2b3c4d5e (letters, digits, "_", "-" and ".")'],
    ['an artifact id with a slash', { artifactId: 'a/b' }, 'artifactId: expected an artifact id such as 20261122T020000Z-1a2b3c4d5e (letters, digits, "_", "-" and ".")'],
    ['a database name with a quote', { intoDatabase: 'app"; drop' }, 'intoDatabase: a plain database name of at most 63 characters'],
    ['a database name too long', { intoDatabase: 'd'.repeat(64) }, 'intoDatabase: a plain database name of at most 63 characters'],
    ['overwrite as a string', { overwrite: 'yes' }, 'overwrite: expected true or false, got string'],
    ['a relative directory', { intoDirectory: 'restored' }, 'intoDirectory: an absolute directory path'],
    ['port 0', { intoPort: 0 }, 'intoPort: must be >= 1'],
    ['port 65536', { intoPort: 65536 }, 'intoPort: must be <= 65535'],
    ['a fractional port', { intoPort: 5432.5 }, 'intoPort: must be a whole number'],
    ['a malformed LSN', { pointInTime: { lsn: '3000060' } }, 'pointInTime.lsn: an LSN like 0/3000060'],
    ['latest: false', { pointInTime: { latest: false } }, 'pointInTime.latest: expected true, got false'],
    // pointInTime is strict: a typo must not silently become "restore to the end".
    ['a misspelt point-in-time field', { pointInTime: { lsm: '0/3000060' } }, 'pointInTime.lsm: is not a known field'],
    ['an empty restore point', { pointInTime: { restorePoint: '' } }, 'pointInTime.restorePoint: must be at least 1 characters'],
  ])('refuses %s', (_name, command, message) => {
    const error = refusal(RequestRestore, command);
    expect({ code: error.code, message: error.message, retryable: error.retryable }).toEqual({ code: 'COMMAND_INVALID', message, retryable: false });
  });
});
