// Text output. Pure functions of data and the current time, so they are unit-tested exactly.
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

export function formatStatus(statuses: readonly TargetStatus[], now: Date): string {
  if (statuses.length === 0) return 'no artifacts yet';
  const age = (a: CatalogArtifact) => formatAge(now.getTime() - Date.parse(a.createdAt));
  const rows = statuses.map((s) => [
    `${s.engine}/${s.target}`,
    s.newest.artifactId,
    age(s.newest),
    verificationCell(s.newest),
    s.newest.verification === 'passed' ? '-' : s.lastVerified ? `${s.lastVerified.artifactId} (${age(s.lastVerified)})` : 'none',
  ]);
  return table(['TARGET', 'NEWEST', 'AGE', 'VERIFICATION', 'LAST VERIFIED'], rows);
}
