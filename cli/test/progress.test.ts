import { describe, expect, it } from 'vitest';
import type { JobProgress } from '@tidemark/contracts';
import { formatEta, formatProgress, progressDisplay } from '../src/commands/progress.js';
import { formatMode } from '../src/commands/ls.js';

const progress = (over: Partial<JobProgress> = {}): JobProgress => ({
  schemaVersion: 1, engine: 'files', target: 'docs', requestId: 'r1', action: 'backup', occurredAt: '2026-12-07T12:00:00.000Z',
  filesDone: 1200, bytesDone: 1.5 * 1073741824, bytesPerSecond: 85 * 1048576, ...over,
});

describe('progress', () => {
  it('shows files and bytes done, of the totals when known, the rate and the ETA', () => {
    expect(formatProgress(progress())).toBe('backup: 1200 files, 1.5 GiB, 85 MiB/s');
    expect(formatProgress(progress({ filesTotal: 5000, bytesTotal: 6 * 1073741824, etaSeconds: 7260, current: 'models/blobs/sha256-abc' }))).toBe(
      'backup: 1200/5000 files, 1.5 GiB of 6.0 GiB (25%), 85 MiB/s, ETA 2h01m: models/blobs/sha256-abc',
    );
    const long = formatProgress(progress({ current: `deep/${'x'.repeat(300)}/end.pdf` }), 100);
    expect(long.length).toBe(100);
    expect(long).toMatch(/: …x+\/end\.pdf$/);
    expect([formatEta(0), formatEta(59.6), formatEta(65), formatEta(3600)]).toEqual(['0s', '1m00s', '1m05s', '1h00m']);
  });

  it('redraws one line on a terminal and clears it before other output and at the end', () => {
    const written: string[] = [];
    const display = progressDisplay({ isTTY: true, write: (raw) => written.push(raw) });
    display.show(progress({ filesDone: 1 }));
    display.show(progress({ filesDone: 2 }));
    display.interrupt();
    display.interrupt();
    display.finish();
    expect(written).toEqual(['\r\x1b[2Kbackup: 1 files, 1.5 GiB, 85 MiB/s', '\r\x1b[2Kbackup: 2 files, 1.5 GiB, 85 MiB/s', '\r\x1b[2K']);
  });

  it('prints a line every 10 s when not on a terminal', () => {
    const written: string[] = [];
    let now = 0;
    const display = progressDisplay({ isTTY: false, write: (raw) => written.push(raw) }, () => now);
    for (const [at, filesDone] of [[0, 1], [3000, 2], [9999, 3], [10_000, 4], [25_000, 5]] as const) {
      now = at;
      display.show(progress({ filesDone }));
    }
    display.finish();
    expect(written.map((line) => line.split(',')[0])).toEqual(['backup: 1 files', 'backup: 4 files', 'backup: 5 files']);
  });

  it('prints modes as ls does', () => {
    expect(formatMode('dir', 0o755)).toBe('drwxr-xr-x');
    expect(formatMode('file', 0o6644)).toBe('-rwSr-Sr--');
    expect(formatMode('file', 0o1777)).toBe('-rwxrwxrwt');
    expect(formatMode('symlink', 0o777)).toBe('lrwxrwxrwx');
  });
});
