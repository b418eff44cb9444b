import { describe, expect, it } from 'vitest';
import type { CatalogArtifact } from '../src/catalog-client.js';
import { formatAge, formatArtifactList, formatBytes, formatStatus, statusExitCode, targetStatuses } from '../src/format.js';

const now = new Date('2025-06-01T12:00:00Z');
const artifact = (artifactId: string, target: string, hoursAgo: number, verification: CatalogArtifact['verification'], extra: Partial<CatalogArtifact> = {}): CatalogArtifact => ({
  artifactId, engine: 'pg', target, kind: 'logical', storedBytes: 1536, verification,
  createdAt: new Date(now.getTime() - hoursAgo * 3600_000).toISOString(), ...extra,
});

describe('format', () => {
  it('formats sizes and ages', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MiB');
    expect(formatAge(45_000)).toBe('45s');
    expect(formatAge(12 * 60_000)).toBe('12m');
    expect(formatAge(3 * 3600_000 + 5)).toBe('3h');
    expect(formatAge(50 * 3600_000)).toBe('2d');
    expect(formatAge(-5)).toBe('0s');
  });

  it('lists artifacts as aligned columns', () => {
    const text = formatArtifactList([
      artifact('20250601T110000Z-aaaaaaaaaa', 'main', 1, 'passed'),
      artifact('20250531T120000Z-bbbbbbbbbb', 'main', 24, 'failed', { verificationError: { code: 'VERIFY_MISMATCH', message: 'x' } }),
    ], now, 5);
    expect(text.split('\n')).toEqual([
      'ARTIFACT                     TARGET   KIND     SIZE     AGE  VERIFICATION',
      '20250601T110000Z-aaaaaaaaaa  pg/main  logical  1.5 KiB  1h   passed',
      '20250531T120000Z-bbbbbbbbbb  pg/main  logical  1.5 KiB  1d   failed (VERIFY_MISMATCH)',
      '(3 more; use --limit)',
    ]);
    expect(formatArtifactList([], now)).toBe('no artifacts');
  });

  it('reports per target the newest artifact and the last verified one', () => {
    const statuses = targetStatuses([
      artifact('b-new', 'billing', 2, 'failed'),
      artifact('b-old', 'billing', 26, 'passed'),
      artifact('m-new', 'main', 1, 'passed'),
      artifact('m-old', 'main', 30, 'failed'),
    ]);
    expect(statuses.map((s) => [s.target, s.newest.artifactId, s.lastVerified?.artifactId, s.artifacts])).toEqual([
      ['billing', 'b-new', 'b-old', 2],
      ['main', 'm-new', undefined, 2],
    ]);
    expect(formatStatus(statuses, now).split('\n')).toEqual([
      'TARGET      NEWEST  AGE  VERIFICATION  LAST VERIFIED',
      'pg/billing  b-new   2h   failed        b-old (1d)',
      'pg/main     m-new   1h   passed        -',
    ]);
    expect(statusExitCode(statuses)).toBe(1);
    expect(statusExitCode(statuses.slice(1))).toBe(0);
  });
});
