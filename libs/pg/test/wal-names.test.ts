// The additions to the WAL name helpers: positions of LSNs and timeline history files.
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { parseTimelineHistory, segmentNameAt, segmentNumberForLsn, segmentStartLsn } from '../src/wal-names.js';

describe('segment positions', () => {
  it('maps an lsn to its segment position and a position back to a name', () => {
    expect(segmentNumberForLsn('0/0')).toBe(0);
    expect(segmentNumberForLsn('0/2FFFFFF')).toBe(2);
    expect(segmentNumberForLsn('0/3000000')).toBe(3);
    expect(segmentNumberForLsn(0x1_0300_0028n)).toBe(256 + 3);
    expect(segmentNameAt(1, 3)).toBe('000000010000000000000003');
    expect(segmentNameAt(2, 256 + 3)).toBe('000000020000000100000003');
    expect(segmentStartLsn(segmentNameAt(1, segmentNumberForLsn('16/B374D848')))).toBe('16/B3000000');
  });
});

describe('parseTimelineHistory', () => {
  it('reads the ancestry of a timeline, oldest first', () => {
    const text = [
      '1\t0/3000000\tno recovery target specified',
      '',
      '# a comment',
      '2\t0/50000A8\tbefore 2025-01-01 10:15:00+00',
      '',
    ].join('\n');
    expect(parseTimelineHistory(text)).toEqual([
      { timeline: 1, switchLsn: '0/3000000', reason: 'no recovery target specified' },
      { timeline: 2, switchLsn: '0/50000A8', reason: 'before 2025-01-01 10:15:00+00' },
    ]);
    expect(parseTimelineHistory('')).toEqual([]);
    // Lower-case hex as written by hand is accepted and normalised.
    expect(parseTimelineHistory('1\t0/3a0\tx')[0]?.switchLsn).toBe('0/3A0');
  });

  it('rejects what is not a history file', () => {
    for (const bad of ['garbage', '1 nolsn reason', '2\t0/5000000\tx\n1\t0/6000000\ty', '1\t0/5000000\tx\n2\t0/4000000\ty', '0\t0/1\tx']) {
      expect(() => parseTimelineHistory(bad), bad).toThrow(TidemarkError);
    }
    try {
      parseTimelineHistory('garbage');
    } catch (error) {
      expect((error as TidemarkError).code).toBe('INTEGRITY_FORMAT');
    }
  });
});
