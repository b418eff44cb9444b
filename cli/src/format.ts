// Text output. Pure functions of data and the current time, so they are unit-tested exactly.
import type { WalArchiveSummary, WalStatusReply } from '@tidemark/contracts';
import type { CatalogArtifact } from './catalog-client.js';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "45s", "12m", "3h", "2d": the largest whole unit. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** "2025-06-01 11:05:00Z": a moment in UTC, to the second. */
export function formatTime(iso: string): string {
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : `${time.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** Left-aligned columns separated by two spaces. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

function verificationCell(a: CatalogArtifact): string {
  if (a.verification === 'failed' && a.verificationError) return `failed (${a.verificationError.code})`;
  return a.verification;
}

export function formatArtifactList(artifacts: readonly CatalogArtifact[], now: Date, total = artifacts.length): string {
  if (artifacts.length === 0) return 'no artifacts';
  const rows = artifacts.map((a) => [
    a.artifactId,
    `${a.engine}/${a.target}`,
    a.kind,
    formatBytes(a.storedBytes),
    formatAge(now.getTime() - Date.parse(a.createdAt)),
    verificationCell(a),
  ]);
  const more = total > artifacts.length ? `\n(${total - artifacts.length} more; use --limit)` : '';
  return table(['ARTIFACT', 'TARGET', 'KIND', 'SIZE', 'AGE', 'VERIFICATION'], rows) + more;
}

export interface TargetStatus {
  readonly engine: string;
  readonly target: string;
  readonly newest: CatalogArtifact;
  /** The newest artifact whose verification passed, when it is not the newest one. */
  readonly lastVerified?: CatalogArtifact;
  readonly artifacts: number;
}

/** Per target: its newest artifact (the catalog lists newest first, but this does not rely on it). */
export function targetStatuses(artifacts: readonly CatalogArtifact[]): TargetStatus[] {
  const groups = new Map<string, CatalogArtifact[]>();
  for (const a of artifacts) {
    const key = `${a.engine}/${a.target}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, list]) => {
      const sorted = [...list].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.artifactId < b.artifactId ? 1 : -1));
      const newest = sorted[0] as CatalogArtifact;
      const lastVerified = sorted.find((a) => a.verification === 'passed');
      return {
        engine: newest.engine,
        target: newest.target,
        newest,
        artifacts: sorted.length,
        ...(lastVerified && lastVerified !== newest ? { lastVerified } : {}),
      };
    });
}

/** Exit 1 when any target's newest artifact failed verification. */
export const statusExitCode = (statuses: readonly TargetStatus[]): number => (statuses.some((s) => s.newest.verification === 'failed') ? 1 : 0);

/** The newest artifact whose verification passed: the newest one itself, or an older one. */
export const lastPassed = (s: TargetStatus): CatalogArtifact | undefined => (s.newest.verification === 'passed' ? s.newest : s.lastVerified);

/**
 * When a restore last proved a backup of the target: "passed 2025-06-01 11:05:00Z (55m ago)",
 * naming the artifact when it is not the newest; "never" when none has passed.
 */
function lastVerifiedCell(s: TargetStatus, now: Date): string {
  const proven = lastPassed(s);
  if (proven === undefined) return 'never';
  const when = proven.verifiedAt !== undefined ? `passed ${formatTime(proven.verifiedAt)} (${formatAge(now.getTime() - Date.parse(proven.verifiedAt))} ago)` : 'passed';
  return proven === s.newest ? when : `${when}: ${proven.artifactId}`;
}

export function formatStatus(statuses: readonly TargetStatus[], now: Date): string {
  if (statuses.length === 0) return 'no artifacts yet';
  const age = (a: CatalogArtifact) => formatAge(now.getTime() - Date.parse(a.createdAt));
  const rows = statuses.map((s) => [
    `${s.engine}/${s.target}`,
    s.newest.artifactId,
    age(s.newest),
    verificationCell(s.newest),
    lastVerifiedCell(s, now),
  ]);
  return table(['TARGET', 'NEWEST', 'AGE', 'VERIFICATION', 'LAST VERIFIED'], rows);
}

/** One WAL target: the archive's newest file (storage) and the live receiver (pg-agent). */
export interface WalTargetStatus {
  readonly target: string;
  /** `unknown` when no pg-agent answered for the target. */
  readonly receiver: 'up' | 'down' | 'unknown';
  readonly state?: string;
  readonly downSince?: string;
  readonly lastArchivedFile?: string;
  readonly lastArchivedAt?: string;
  /** The age of the oldest WAL not archived yet, as the agent measures it. */
  readonly lagSeconds?: number;
  readonly lastError?: string;
}

/**
 * Per WAL target, from the archive summary (`catalog.wal`) and the agent's receivers
 * (`status.wal`; undefined when no pg-agent answered). The newer of the two "last archived" wins:
 * the archive remembers files from before the agent's start, the agent sees uploads first.
 */
export function walStatuses(archives: readonly WalArchiveSummary[], receivers: WalStatusReply | undefined): WalTargetStatus[] {
  const targets = new Set([...archives.filter((a) => a.current).map((a) => a.target), ...(receivers?.receivers.map((r) => r.target) ?? [])]);
  return [...targets].sort().map((target) => {
    const archive = archives.find((a) => a.target === target && a.current);
    const live = receivers?.receivers.find((r) => r.target === target);
    const fromArchive = archive?.newestFile !== undefined && archive.newestArchivedAt !== undefined ? { file: archive.newestFile, at: archive.newestArchivedAt } : undefined;
    const fromAgent = live?.lastArchivedFile !== undefined && live.lastArchivedAt !== undefined ? { file: live.lastArchivedFile, at: live.lastArchivedAt } : undefined;
    const newest = fromArchive && fromAgent ? (Date.parse(fromAgent.at) >= Date.parse(fromArchive.at) ? fromAgent : fromArchive) : (fromAgent ?? fromArchive);
    return {
      target,
      receiver: live === undefined ? 'unknown' : live.receiverUp ? 'up' : 'down',
      ...(live !== undefined ? { state: live.state } : {}),
      ...(live?.downSince !== undefined ? { downSince: live.downSince } : {}),
      ...(newest ? { lastArchivedFile: newest.file, lastArchivedAt: newest.at } : {}),
      ...(live?.lagSeconds !== undefined ? { lagSeconds: live.lagSeconds } : {}),
      ...(live?.lastError !== undefined ? { lastError: live.lastError } : {}),
    };
  });
}

function receiverCell(w: WalTargetStatus, now: Date): string {
  if (w.receiver === 'unknown') return 'unknown (no pg-agent answered)';
  if (w.receiver === 'up') return 'up';
  const since = w.downSince !== undefined ? ` for ${formatAge(now.getTime() - Date.parse(w.downSince))} (since ${formatTime(w.downSince)})` : '';
  return `down${since}${w.state === 'refused' ? ': refused by the config' : ''}`;
}

export function formatWalStatus(rows: readonly WalTargetStatus[], now: Date): string {
  const cells = rows.map((w) => [
    `pg/${w.target}`,
    receiverCell(w, now),
    w.lastArchivedFile !== undefined && w.lastArchivedAt !== undefined ? `${w.lastArchivedFile} (${formatAge(now.getTime() - Date.parse(w.lastArchivedAt))} ago)` : 'nothing yet',
    w.lagSeconds !== undefined ? `${w.lagSeconds.toFixed(1)}s` : 'unknown',
  ]);
  const problems = rows.filter((w) => w.receiver === 'down' && w.lastError !== undefined).map((w) => `pg/${w.target}: ${w.lastError}`);
  return [table(['WAL', 'RECEIVER', 'LAST ARCHIVED', 'LAG'], cells), ...problems].join('\n');
}
