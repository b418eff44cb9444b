import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TidemarkError } from '@tidemark/contracts';
import { parseTree, type TreeEntry, type TreeHeader, type TreeSegmentRef } from '../src/index.js';
import { treeEntryLine, treeHeaderLine, treeSegmentLine } from '../src/tree/index.js';
import { readTree } from './helpers.js';

const header: TreeHeader = { treeVersion: 1, sourceKind: 'directory', location: '/srv/docs', createdAt: '2026-01-02T03:04:05.000Z' };
const base = { mode: 0o644, uid: 0, gid: 0, mtimeNs: '1700000000123456789', size: 0 } as const;
const hex = (digit: string): string => digit.repeat(64);

const entries: TreeEntry[] = [
  { ...base, path: 'a', type: 'dir', mode: 0o755 },
  { ...base, path: 'a/b', type: 'file', size: 5, chunks: [{ id: hex('1'), size: 2 }, { id: hex('2'), size: 3 }], sha256: hex('3'), inode: 7, device: 2 },
  { ...base, path: 'a/c', type: 'hardlink', linkTo: 'a/b' },
  { ...base, path: 'a.txt', type: 'symlink', linkTarget: '../../etc/passwd' },
  { ...base, path: 'line\nbreak', type: 'file', problem: 'unreadable', size: 9 },
  { ...base, path: 'z\uFFFD', pathBase64: Buffer.from([0x7a, 0xff]).toString('base64'), type: 'file', size: 0, chunks: [] },
];

/** The tree as byte pieces cut at awkward places, as a decoder hands them out. */
function treeStream(lines: string[], pieceBytes = 7): Readable {
  const all = Buffer.from(lines.join(''));
  const pieces: Buffer[] = [];
  for (let at = 0; at < all.length; at += pieceBytes) pieces.push(all.subarray(at, at + pieceBytes));
  return Readable.from(pieces);
}

async function failureOf(lines: string[]): Promise<TidemarkError> {
  const error = await readTree(treeStream(lines)).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(TidemarkError);
  return error as TidemarkError;
}

describe('tree lines', () => {
  it('round-trip through parseTree, whatever the piece boundaries (names with newlines and invalid UTF-8 included)', async () => {
    for (const pieceBytes of [1, 7, 4096]) {
      const parsed = await readTree(treeStream([treeHeaderLine(header), ...entries.map(treeEntryLine)], pieceBytes));
      expect(parsed.header).toEqual(header);
      expect(parsed.entries).toEqual(entries);
    }
  });

  it('an empty tree or a bad header is INTEGRITY_FORMAT on line 1', async () => {
    expect((await failureOf([])).message).toMatch(/line 1: the tree is empty/);
    const wrongVersion = await failureOf([`${JSON.stringify({ ...header, treeVersion: 3 })}\n`]);
    expect(wrongVersion.code).toBe('INTEGRITY_FORMAT');
    expect(wrongVersion.message).toMatch(/line 1: treeVersion/);
  });

  it.each([
    ['not JSON', '{"path":', /line 3: not JSON/],
    ['an absolute path', treeEntryLine({ ...base, path: '/etc/passwd', type: 'dir' } as TreeEntry), /line 3: path must be relative/],
    ['a ".." segment', treeEntryLine({ ...base, path: 'a/../../x', type: 'dir' } as TreeEntry), /line 3: path must be relative/],
    ['a NUL byte', treeEntryLine({ ...base, path: 'a\0b', type: 'dir' } as TreeEntry), /line 3: path holds a NUL/],
    ['base64 that is not the path', treeEntryLine({ ...base, path: 'b', pathBase64: Buffer.from('c').toString('base64'), type: 'dir' } as TreeEntry), /line 3: path does not match/],
    ['chunks not adding up', treeEntryLine({ ...base, path: 'b', type: 'file', size: 4, chunks: [{ id: hex('1'), size: 3 }] }), /line 3: chunk sizes add up to 3, not the size 4/],
    ['a file without chunks', treeEntryLine({ ...base, path: 'b', type: 'file', size: 4 }), /line 3: a file without a problem needs chunks/],
    ['an unknown field', `${JSON.stringify({ ...base, path: 'b', type: 'dir', evil: true })}\n`, /line 3: evil: is not a known field/],
    ['a hardlink leaving the tree', treeEntryLine({ ...base, path: 'b', type: 'hardlink', linkTo: '../x' }), /line 3: linkTo must be relative/],
    ['a mode past 0o7777', treeEntryLine({ ...base, path: 'b', type: 'dir', mode: 0o100755 }), /line 3: mode/],
    ['a float mtime', treeEntryLine({ ...base, path: 'b', type: 'dir', mtimeNs: '1.5e9' }), /line 3: mtimeNs/],
    ['out of walk order', treeEntryLine({ ...base, path: 'a', type: 'dir' }), /line 3: "a" is out of walk order/],
  ])('a line with %s is INTEGRITY_FORMAT naming its line', async (_what, line, message) => {
    const error = await failureOf([treeHeaderLine(header), treeEntryLine({ ...base, path: 'a.txt', type: 'dir' }), line]);
    expect(error.code).toBe('INTEGRITY_FORMAT');
    expect(error.message).toMatch(message);
  });

  it('reads lazily: entries come before the stream has ended', async () => {
    let pushedAfterFirstEntry = 0;
    let sawEntry = false;
    async function* slowly(): AsyncGenerator<Buffer> {
      yield Buffer.from(treeHeaderLine(header) + treeEntryLine(entries[0]!));
      for (const entry of entries.slice(1)) {
        if (sawEntry) pushedAfterFirstEntry += 1;
        yield Buffer.from(treeEntryLine(entry));
      }
    }
    const parsed = parseTree(slowly());
    for await (const entry of parsed.entries) {
      if (entry.path === 'a') sawEntry = true;
    }
    expect(pushedAfterFirstEntry).toBeGreaterThan(0);
  });
});

describe('version 2 trees (segments)', () => {
  const v2 = { ...header, treeVersion: 2 } as const;
  const body = Buffer.from(entries.map(treeEntryLine).join(''));
  // Cut inside a line, as a long line may be: the next segment goes on with it.
  const segments = new Map([[hex('a'), body.subarray(0, 100)], [hex('b'), body.subarray(100)]]);
  const readSegments = async (refs: readonly TreeSegmentRef[]): Promise<Buffer[]> => refs.map((ref) => segments.get(ref.segment)!);
  const refLines = [treeSegmentLine({ segment: hex('a'), size: 100 }), treeSegmentLine({ segment: hex('b'), size: body.length - 100 })];
  const parse = async (lines: string[]): Promise<TreeEntry[]> => {
    const parsed: TreeEntry[] = [];
    for await (const entry of parseTree(treeStream(lines), { readSegments }).entries) parsed.push(entry);
    return parsed;
  };

  it('read through their segments, in order, whatever the cuts', async () => {
    expect(await parse([treeHeaderLine(v2), ...refLines])).toEqual(entries);
  });

  it('a bad segment line, or a segment of another length than its line says, is INTEGRITY_FORMAT', async () => {
    await expect(parse([treeHeaderLine(v2), '{"segment":"zz","size":1}\n'])).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT', message: expect.stringMatching(/line 2: segment/) });
    await expect(parse([treeHeaderLine(v2), treeSegmentLine({ segment: hex('a'), size: 99 })])).rejects.toMatchObject({ code: 'INTEGRITY_FORMAT', message: expect.stringMatching(/holds 100 bytes, the tree says 99/) });
  });
});
