import { describe, expect, it } from 'vitest';
import { inCliTerms } from '../src/cli-terms.js';

const pgMain = { engine: 'pg' as const, target: 'main' };

// Each row: an agent's message (as sent to a `nats pub` user) and how the CLI prints it.
const TABLE: ReadonlyArray<readonly [string, string]> = [
  [
    'database app exists; restore into another database or set overwrite: true (the old one is kept as app_pre_restore_<time>)',
    'database app exists; restore into another database or add --overwrite (the old one is kept as app_pre_restore_<time>)',
  ],
  [
    '/srv/pg is not empty; restore into another directory, or set overwrite: true (the existing one is moved to /srv/pg.pre_restore_1 and kept)',
    '/srv/pg is not empty; restore into another directory, or add --overwrite (the existing one is moved to /srv/pg.pre_restore_1 and kept)',
  ],
  ['qdrant collection docs exists; restore into another name or set overwrite (the old collection is kept)', 'qdrant collection docs exists; restore into another name or add --overwrite (the old collection is kept)'],
  [
    'qdrant collection docs exists; restore into another collection (intoCollection) or set overwrite: true (kept)',
    'qdrant collection docs exists; restore into another collection (--into <collection>) or add --overwrite (kept)',
  ],
  ['artifact a1 of pg target "main" is not committed; list artifacts with the catalog', 'artifact a1 of pg target "main" is not committed; list artifacts with `tidemark list pg main`'],
  ['no committed artifact "a1"; list artifacts with catalog.list', 'no committed artifact "a1"; list artifacts with `tidemark list pg main`'],
  ['base backup b1 ends after the target; name an older base backup or leave artifactId out', 'base backup b1 ends after the target; name an older base backup or leave --artifact out'],
  ['every base backup failed verification; name one with artifactId to use it anyway, or choose a later target', 'every base backup failed verification; name one with --artifact <id> to use it anyway, or choose a later target'],
  ['port 5544 is in use on 127.0.0.1; choose another intoPort, or leave it out for a free one', 'port 5544 is in use on 127.0.0.1; choose another port with --into <port>, or leave it out for a free one'],
  [
    'a point-in-time restore creates a data directory and a server, not a database: use intoDirectory and intoPort instead of intoDatabase',
    'a point-in-time restore creates a data directory and a server, not a database: use --into <dir>, <port> or <dir>:<port> instead of --into <database>',
  ],
  ['reason: expected at most 2000 characters', '--reason: expected at most 2000 characters'],
  ['kind: the pg agent makes "logical" and "base" backups; "snapshot" is not one of them', '--kind: the pg agent makes "logical" and "base" backups; "snapshot" is not one of them'],
  ['pointInTime.time: expected an ISO 8601 time; intoPort: expected a number', '--to: expected an ISO 8601 time; --into <port>: expected a number'],
  // Nothing to translate: left as it is.
  ['pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433)', 'pg_dump: the source postgres could not be reached (connect ECONNREFUSED 127.0.0.1:5433)'],
];

describe('inCliTerms', () => {
  it.each(TABLE)('%s', (message, expected) => {
    expect(inCliTerms(message, pgMain)).toBe(expected);
  });

  it('without a scope names the plain list command', () => {
    expect(inCliTerms('x; list artifacts with the catalog')).toBe('x; list artifacts with `tidemark list`');
  });
});
