// compareFacts decides whether a restored copy is the backup: each kind of difference must fail
// one check that names the table (or probe) and carries both values, and the tolerated
// differences must stay tolerated.
import { describe, expect, it } from 'vitest';
import type { PgSourceFacts, VerificationCheck } from '@tidemark/contracts';
import { compareBaseFacts, compareFacts, probeKOf } from '../src/index.js';

const facts: PgSourceFacts = {
  serverVersion: '15.8',
  serverVersionNum: 150008,
  database: 'app',
  databaseSizeBytes: 8_000_000,
  extensions: [{ name: 'vector', version: '0.5.1' }],
  tables: [
    { schema: 'public', name: 'docs', rows: 100, checksum: 'c-docs' },
    { schema: 'public', name: 'chunks', rows: 2000, checksum: 'c-chunks' },
    { schema: 'audit', name: 'log', rows: 5 },
  ],
  vectorProbes: [
    { schema: 'public', table: 'chunks', column: 'embedding', keyColumn: 'id', queryKey: '17', k: 3, topKeys: ['17', '4', '99'] },
  ],
};

/** The same facts with `change` applied, as a restored copy would report them. */
const restored = (change: (f: PgSourceFacts) => Partial<PgSourceFacts>): PgSourceFacts => ({ ...facts, ...change(facts) });
const failed = (checks: readonly VerificationCheck[]) => checks.filter((c) => !c.ok);
const withTable = (f: PgSourceFacts, name: string, patch: Partial<PgSourceFacts['tables'][number]>) =>
  f.tables.map((t) => (t.name === name ? { ...t, ...patch } : t));
const withProbe = (f: PgSourceFacts, patch: Partial<PgSourceFacts['vectorProbes'][number]>) => f.vectorProbes.map((p) => ({ ...p, ...patch }));

describe('compareFacts', () => {
  it('equal facts pass every check, one per extension, table, checksum and probe', () => {
    const checks = compareFacts(facts, structuredClone(facts));
    expect(failed(checks)).toEqual([]);
    expect(checks.map((c) => c.name)).toEqual([
      'extension:vector',
      'rows:public.docs', 'checksum:public.docs',
      'rows:public.chunks', 'checksum:public.chunks',
      'rows:audit.log',
      'probe:public.chunks.embedding',
    ]);
  });

  it.each<readonly [string, PgSourceFacts, readonly VerificationCheck[]]>([
    ['a row count', restored((f) => ({ tables: withTable(f, 'docs', { rows: 99 }) })), [
      { name: 'rows:public.docs', ok: false, expected: 100, actual: 99 },
    ]],
    ['a checksum', restored((f) => ({ tables: withTable(f, 'chunks', { checksum: 'c-other' }) })), [
      { name: 'checksum:public.chunks', ok: false, expected: 'c-chunks', actual: 'c-other' },
    ]],
    ['a checksum the restored copy did not compute', restored((f) => ({ tables: withTable(f, 'chunks', { checksum: undefined }) })), [
      { name: 'checksum:public.chunks', ok: false, expected: 'c-chunks', actual: null },
    ]],
    ['a missing table', restored((f) => ({ tables: f.tables.filter((t) => t.name !== 'docs') })), [
      { name: 'rows:public.docs', ok: false, expected: 100, actual: null },
      { name: 'checksum:public.docs', ok: false, expected: 'c-docs', actual: null },
    ]],
    ['an extra table', restored((f) => ({ tables: [...f.tables, { schema: 'public', name: 'scratch', rows: 3 }] })), [
      { name: 'rows:public.scratch', ok: false, expected: null, actual: 3, detail: 'table not present at backup time' },
    ]],
    ['the same table name in another schema is another table', restored((f) => ({ tables: f.tables.map((t) => (t.name === 'log' ? { ...t, schema: 'public' } : t)) })), [
      { name: 'rows:audit.log', ok: false, expected: 5, actual: null },
      { name: 'rows:public.log', ok: false, expected: null, actual: 5, detail: 'table not present at backup time' },
    ]],
    ['a missing extension', restored(() => ({ extensions: [] })), [
      { name: 'extension:vector', ok: false, expected: '0.5.1', actual: null },
    ]],
    ['a kNN result in another order', restored((f) => ({ vectorProbes: withProbe(f, { topKeys: ['4', '17', '99'] }) })), [
      { name: 'probe:public.chunks.embedding', ok: false, expected: { queryKey: '17', topKeys: ['17', '4', '99'] }, actual: { queryKey: '17', topKeys: ['4', '17', '99'] } },
    ]],
    ['a kNN result with a neighbour missing', restored((f) => ({ vectorProbes: withProbe(f, { topKeys: ['17', '4'] }) })), [
      { name: 'probe:public.chunks.embedding', ok: false, expected: { queryKey: '17', topKeys: ['17', '4', '99'] }, actual: { queryKey: '17', topKeys: ['17', '4'] } },
    ]],
    ['a kNN result with another neighbour', restored((f) => ({ vectorProbes: withProbe(f, { topKeys: ['17', '4', '98'] }) })), [
      { name: 'probe:public.chunks.embedding', ok: false, expected: { queryKey: '17', topKeys: ['17', '4', '99'] }, actual: { queryKey: '17', topKeys: ['17', '4', '98'] } },
    ]],
    ['a probe replayed from another query row', restored((f) => ({ vectorProbes: withProbe(f, { queryKey: '18' }) })), [
      { name: 'probe:public.chunks.embedding', ok: false, expected: { queryKey: '17', topKeys: ['17', '4', '99'] }, actual: { queryKey: '18', topKeys: ['17', '4', '99'] } },
    ]],
    ['a probe that was not replayed', restored(() => ({ vectorProbes: [] })), [
      { name: 'probe:public.chunks.embedding', ok: false, expected: { queryKey: '17', topKeys: ['17', '4', '99'] }, actual: null },
    ]],
  ])('%s differs: only that check fails, naming it and both values', (_difference, actual, expectedFailures) => {
    expect(failed(compareFacts(facts, actual))).toEqual(expectedFailures);
  });

  it.each<readonly [string, PgSourceFacts, VerificationCheck | undefined]>([
    // pg_dump writes CREATE EXTENSION without a version: the sandbox installs its own default.
    ['another extension version', restored(() => ({ extensions: [{ name: 'vector', version: '0.7.0' }] })), { name: 'extension:vector', ok: true, expected: '0.5.1', actual: '0.7.0' }],
    // The sandbox's own extensions (plpgsql) are not the backup's business.
    ['an extra extension', restored((f) => ({ extensions: [...f.extensions, { name: 'plpgsql', version: '1.0' }] })), undefined],
    // Checksums are compared only where the backup took one.
    ['a checksum where the backup had none', restored((f) => ({ tables: withTable(f, 'log', { checksum: 'c-log' }) })), undefined],
    ['an extra probe on the restored copy', restored((f) => ({ vectorProbes: [...f.vectorProbes, { ...f.vectorProbes[0]!, column: 'title_embedding' }] })), undefined],
    // Size, version and snapshot describe the server, not the data.
    ['another server, size and snapshot', restored(() => ({ serverVersion: '15.9', serverVersionNum: 150009, databaseSizeBytes: 1, snapshot: '00000003-1' })), undefined],
    ['tables listed in another order', restored((f) => ({ tables: [...f.tables].reverse() })), undefined],
  ])('tolerated: %s', (_difference, actual, shown) => {
    const checks = compareFacts(facts, actual);
    expect(failed(checks)).toEqual([]);
    if (shown) expect(checks).toContainEqual(shown);
  });

  it('no facts on either side: nothing to check, nothing fails', () => {
    const empty: PgSourceFacts = { ...facts, extensions: [], tables: [], vectorProbes: [] };
    expect(compareFacts(empty, empty)).toEqual([]);
  });
});

describe('compareBaseFacts', () => {
  it('tables written while the backup ran are only read, everything else is compared exactly', () => {
    const actual = restored((f) => ({
      tables: withTable(f, 'chunks', { rows: 2100, checksum: 'c-later' }),
      vectorProbes: withProbe(f, { topKeys: ['17', '4', '100'] }),
    }));
    const checks = compareBaseFacts(facts, ['public.chunks'], actual);
    expect(failed(checks)).toEqual([]);
    expect(checks.map((c) => c.name)).toEqual(['extension:vector', 'rows:public.docs', 'checksum:public.docs', 'rows:audit.log', 'readable:public.chunks']);
    expect(checks.at(-1)).toMatchObject({ ok: true, actual: 2100 });
  });

  it('a table outside the written ones still fails on a difference', () => {
    const checks = compareBaseFacts(facts, ['public.chunks'], restored((f) => ({ tables: withTable(f, 'docs', { rows: 1 }) })));
    expect(failed(checks)).toEqual([{ name: 'rows:public.docs', ok: false, expected: 100, actual: 1 }]);
  });

  it('a written table dropped before the backup ended is readable by absence', () => {
    const checks = compareBaseFacts(facts, ['public.chunks'], restored((f) => ({ tables: f.tables.filter((t) => t.name !== 'chunks'), vectorProbes: [] })));
    expect(failed(checks)).toEqual([]);
    expect(checks.at(-1)).toMatchObject({ name: 'readable:public.chunks', ok: true, actual: null });
  });
});

describe('probeKOf', () => {
  it.each([
    [[], undefined],
    [[3], 3],
    [[3, 10, 5], 10],
  ])('k of probes %j → %s', (ks, k) => {
    const probes = ks.map((n) => ({ ...facts.vectorProbes[0]!, k: n }));
    expect(probeKOf({ ...facts, vectorProbes: probes })).toBe(k);
  });
});
