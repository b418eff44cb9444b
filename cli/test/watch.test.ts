import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/args.js';
import { DEFAULT_WATCH_SUBJECTS, formatWatchedEvent } from '../src/commands/watch.js';

const at = new Date('2026-12-04T02:23:57.000Z');

describe('tidemark watch: one readable line per event', () => {
  it('an alert is its severity and summary', () => {
    const alert = { schemaVersion: 1, occurredAt: '2026-12-04T02:23:56.980Z', severity: 'warning', kind: 'command_rejected', summary: 'A command on backup.requested.pg.nosuch was rejected (TARGET_UNKNOWN): no pg target named "nosuch".', dedupeKey: 'k' };
    expect(formatWatchedEvent('alert.warning.command_rejected', alert, at)).toBe(
      '2026-12-04T02:23:56.980Z alert.warning.command_rejected  [warning] A command on backup.requested.pg.nosuch was rejected (TARGET_UNKNOWN): no pg target named "nosuch".',
    );
  });

  it('any other event is its fields, with errors as CODE: message', () => {
    const failed = {
      schemaVersion: 1, occurredAt: '2026-12-04T02:23:56.980Z', engine: 'pg', target: 'demo', requestId: 'r-1', kind: 'logical', attempt: 2, final: false,
      error: { code: 'SOURCE_UNAVAILABLE', message: 'the source postgres could not be reached; attempt 2 of 5, it will be retried', retryable: true },
    };
    expect(formatWatchedEvent('backup.failed.pg.demo', failed, at)).toBe(
      '2026-12-04T02:23:56.980Z backup.failed.pg.demo  engine=pg target=demo requestId=r-1 kind=logical attempt=2 final=false '
      + 'error=SOURCE_UNAVAILABLE: the source postgres could not be reached; attempt 2 of 5, it will be retried',
    );
  });

  it('quotes text with spaces, clips long values, and uses the receive time when the event has none', () => {
    const line = formatWatchedEvent('command.rejected', { reason: 'before migration', payloadPreview: 'x'.repeat(500), checks: [{ name: 'rows', ok: true }] }, at);
    expect(line.startsWith('2026-12-04T02:23:57.000Z command.rejected  reason="before migration" payloadPreview=xxx')).toBe(true);
    expect(line).toContain('…');
    expect(line).toContain('checks=[{"name":"rows","ok":true}]');
  });

  it('defaults to every Tidemark stream subject', () => {
    expect(DEFAULT_WATCH_SUBJECTS).toEqual(expect.arrayContaining(['alert.>', 'command.rejected', 'wal.>', 'backup.requested.pg.*']));
  });

  it('parses a subject, --count and --json', () => {
    expect(parseArgs(['--json', 'watch', 'alert.>', '--count', '3'])).toMatchObject({ ok: true, globals: { json: true }, command: { name: 'watch', subject: 'alert.>', count: 3 } });
    expect(parseArgs(['watch'])).toMatchObject({ ok: true, command: { name: 'watch' } });
    expect(parseArgs(['watch', 'alert..x'])).toMatchObject({ ok: false, error: expect.stringContaining('is not a NATS subject') });
    expect(parseArgs(['watch', 'a', 'b'])).toMatchObject({ ok: false });
  });
});
