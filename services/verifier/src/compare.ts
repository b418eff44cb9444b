// Backup-time facts (from the manifest) against the facts of the restored copy: one check per
// table, checksum, extension and vector probe, so a failure names exactly what differs.
import type { PgSourceFacts, VerificationCheck } from '@tidemark/contracts';

const tableName = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export function compareFacts(expected: PgSourceFacts, actual: PgSourceFacts): VerificationCheck[] {
  const checks: VerificationCheck[] = [];
  const actualExtensions = new Map(actual.extensions.map((e) => [e.name, e.version]));
  for (const extension of expected.extensions) {
    const version = actualExtensions.get(extension.name);
    checks.push({ name: `extension:${extension.name}`, ok: version !== undefined, expected: extension.version, actual: version ?? null });
  }

  const actualTables = new Map(actual.tables.map((t) => [tableName(t), t]));
  for (const table of expected.tables) {
    const name = tableName(table);
    const restored = actualTables.get(name);
    checks.push({ name: `rows:${name}`, ok: restored?.rows === table.rows, expected: table.rows, actual: restored?.rows ?? null });
    if (table.checksum !== undefined) {
      checks.push({ name: `checksum:${name}`, ok: restored?.checksum === table.checksum, expected: table.checksum, actual: restored?.checksum ?? null });
    }
    actualTables.delete(name);
  }
  for (const extra of actualTables.keys()) {
    checks.push({ name: `rows:${extra}`, ok: false, expected: null, actual: actualTables.get(extra)?.rows ?? null, detail: 'table not present at backup time' });
  }

  for (const probe of expected.vectorProbes) {
    const name = `probe:${probe.schema}.${probe.table}.${probe.column}`;
    const replayed = actual.vectorProbes.find((p) => p.schema === probe.schema && p.table === probe.table && p.column === probe.column);
    const ok = replayed !== undefined && replayed.queryKey === probe.queryKey && sameList(replayed.topKeys, probe.topKeys);
    checks.push({
      name,
      ok,
      expected: { queryKey: probe.queryKey, topKeys: probe.topKeys },
      actual: replayed ? { queryKey: replayed.queryKey, topKeys: replayed.topKeys } : null,
    });
  }
  return checks;
}

/** The largest k any probe used, so the replay asks for as many neighbours. */
export const probeKOf = (facts: PgSourceFacts): number | undefined =>
  facts.vectorProbes.length === 0 ? undefined : Math.max(...facts.vectorProbes.map((p) => p.k));

/**
 * A base backup's facts were taken in a snapshot at backup start, while the restored copy is the
 * cluster at the backup's stop LSN. Tables written in between (`changed`, "schema.table") cannot
 * be compared: they are left out of the exact comparison (rows, checksums, vector probes) and
 * only checked for readability (the restored copy's facts read each of their rows). Everything
 * else must be equal, exactly as for a logical backup.
 */
export function compareBaseFacts(expected: PgSourceFacts, changed: readonly string[], actual: PgSourceFacts): VerificationCheck[] {
  const written = new Set(changed);
  const stable = (facts: PgSourceFacts): PgSourceFacts => ({
    ...facts,
    tables: facts.tables.filter((t) => !written.has(tableName(t))),
    vectorProbes: facts.vectorProbes.filter((p) => !written.has(`${p.schema}.${p.table}`)),
  });
  const checks = compareFacts(stable(expected), stable(actual));
  const restored = new Map(actual.tables.map((t) => [tableName(t), t]));
  for (const name of [...written].sort()) {
    const table = restored.get(name);
    checks.push(
      table
        ? { name: `readable:${name}`, ok: true, actual: table.rows, detail: 'written while the backup ran: every row was read, not compared' }
        : { name: `readable:${name}`, ok: true, actual: null, detail: 'written while the backup ran and absent from the restored copy (dropped before the backup ended)' },
    );
  }
  return checks;
}
