import { describe, expect, it } from 'vitest';
import { COMMAND_ENGINES, MAX_COMMAND_BYTES } from '@tidemark/contracts';

import { intakeRejection, payloadPreview, subjectMatches } from '../src/intake.js';

describe('subjectMatches', () => {
  it('follows NATS wildcard rules', () => {
    expect(subjectMatches('backup.requested.pg.*', 'backup.requested.pg.main')).toBe(true);
    expect(subjectMatches('backup.requested.pg.*', 'backup.requested.pg.a.b')).toBe(false);
    expect(subjectMatches('backup.requested.>', 'backup.requested.pg.a.b')).toBe(true);
    expect(subjectMatches('backup.requested.>', 'backup.requested')).toBe(false);
    expect(subjectMatches('command.rejected', 'command.rejected')).toBe(true);
  });
});

describe('intakeRejection', () => {
  it('accepts what the command stream stores', () => {
    expect(intakeRejection('backup.requested.pg.main', 10)).toBeUndefined();
    for (const engine of COMMAND_ENGINES) expect(intakeRejection(`restore.requested.${engine}.vectors`, 10)).toBeUndefined();
  });
  it('rejects unknown engines, bad shapes and oversized payloads', () => {
    expect(intakeRejection('backup.requested.mysql.x', 2)?.message).toContain('unknown engine "mysql"');
    expect(intakeRejection('backup.requested.pg.Bad.Target', 2)?.message).toContain('four tokens');
    expect(intakeRejection('backup.requested.pg.main', MAX_COMMAND_BYTES + 1)?.code).toBe('COMMAND_TOO_LARGE');
  });
});

describe('payloadPreview', () => {
  it('escapes non-printable bytes and stays within 200 characters', () => {
    expect(payloadPreview(new Uint8Array([0x7b, 0x0a, 0x00, 0xff, 0x5c, 0x7d]))).toBe('{\\n\\x00\\xff\\\\}');
    const long = payloadPreview(new Uint8Array(1000).fill(0x01));
    expect(long.length).toBeLessThanOrEqual(200);
    expect(long.startsWith('\\x01')).toBe(true);
  });
});
