import { describe, expect, it } from 'vitest';
import type { CatalogArtifact } from '../src/catalog-client.js';
import { formatAge, formatArtifactList, formatBytes, formatStatus, formatTime, formatWalStatus, statusExitCode, targetStatuses, walStatuses } from '../src/format.js';

const now = new Date('2025-06-01T12:00:00Z');
const artifact = (artifactId: string, target: string, hoursAgo: number, verification: CatalogArtifact['verification'], extra: Partial<CatalogArtifact> = {}): CatalogArtifact => ({
  artifactId, engine: 'pg', target, kind: 'logical', storedBytes: 1536, verification,
  createdAt: new Date(now.getTime() - hoursAgo * 3600_000).toISOString(), ...extra,
}) as CatalogArtifact; // only the fields the formatters read

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
      artifact('b-old', 'billing', 26, 'passed', { verifiedAt: '2025-05-31T10:05:00.000Z' }),
      artifact('m-new', 'main', 1, 'passed', { verifiedAt: '2025-06-01T11:05:00.000Z' }),
      artifact('m-old', 'main', 30, 'failed'),
      artifact('q-new', 'quiet', 1, 'unverified'),
    ]);
    expect(statuses.map((s) => [s.target, s.newest.artifactId, s.lastVerified?.artifactId, s.artifacts])).toEqual([
      ['billing', 'b-new', 'b-old', 2],
      ['main', 'm-new', undefined, 2],
      ['quiet', 'q-new', undefined, 1],
    ]);
    // The newest artifact passed: the time of its verification, not "-" (which read like "never").
    expect(formatStatus(statuses, now).split('\n')).toEqual([
      'TARGET      NEWEST  AGE  VERIFICATION  LAST VERIFIED',
      'pg/billing  b-new   2h   failed        passed 2025-05-31 10:05:00Z (1d ago): b-old',
      'pg/main     m-new   1h   passed        passed 2025-06-01 11:05:00Z (55m ago)',
      'pg/quiet    q-new   1h   unverified    never',
    ]);
    expect(statusExitCode(statuses)).toBe(1);
    expect(statusExitCode(statuses.slice(1))).toBe(0);
    expect(formatTime('2025-06-01T11:05:00.123+02:00')).toBe('2025-06-01 09:05:00Z');
  });

  it('shows WAL state per target: receiver up or down (or unknown when no pg-agent answers), last archived file, lag', () => {
    const summary = (target: string, newestFile: string, minutesAgo: number) => ({
      target, systemIdentifier: '7300000000000000001', current: true, segments: 3, partials: 1, histories: 0, storedBytes: 1, timelines: [1],
      newestFile, newestArchivedAt: new Date(now.getTime() - minutesAgo * 60_000).toISOString(),
    });
    const archives = [summary('main', '000000010000000000000004', 10), summary('billing', '000000010000000000000009', 3), { ...summary('main', '00000001000000000000000A', 1), current: false }];
    const receivers = {
      agent: 'pg-agent-1',
      receivers: [
        { target: 'main', state: 'running', receiverUp: true, lastArchivedFile: '000000010000000000000005.partial', lastArchivedAt: new Date(now.getTime() - 2000).toISOString(), lagSeconds: 0.42 },
        { target: 'offline', state: 'receiver down', receiverUp: false, downSince: '2025-06-01T11:55:00.000Z', lagSeconds: 300, lastError: 'connect ECONNREFUSED 127.0.0.1:5433' },
      ],
    };
    const rows = walStatuses(archives, receivers);
    expect(formatWalStatus(rows, now).split('\n')).toEqual([
      'WAL         RECEIVER                                  LAST ARCHIVED                              LAG',
      'pg/billing  unknown (no pg-agent answered)            000000010000000000000009 (3m ago)          unknown',
      'pg/main     up                                        000000010000000000000005.partial (2s ago)  0.4s',
      'pg/offline  down for 5m (since 2025-06-01 11:55:00Z)  nothing yet                                300.0s',
      'pg/offline: connect ECONNREFUSED 127.0.0.1:5433',
    ]);
    // No pg-agent at all: every row says the receiver is unknown; the archive still shows.
    expect(walStatuses(archives, undefined).map((r) => [r.target, r.receiver, r.lastArchivedFile])).toEqual([
      ['billing', 'unknown', '000000010000000000000009'],
      ['main', 'unknown', '000000010000000000000004'],
    ]);
  });
});
