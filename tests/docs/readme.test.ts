// The README is a tested document: every YAML block must load with the real config loader, every
// JSON block and every JSON payload in a `nats pub` / `nats req` example must pass the schema of the
// message it is sent as. A README that drifts from the code fails here, not in a user's terminal.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CatalogDescribeRequest,
  CatalogListRequest,
  CatalogTreeRequest,
  CatalogWalRequest,
  RequestBackup,
  RequestRestore,
  decode,
  parseCommandSubject,
  type Schema,
} from '@tidemark/contracts';
import { parseConfig } from '@tidemark/config';

const README = new URL('../../README.md', import.meta.url);

interface Block {
  readonly language: string;
  readonly body: string;
  readonly line: number;
}

function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    blocks.push({ language: open[1]!, body: lines.slice(start, end).join('\n'), line: start + 1 });
    i = end;
  }
  return blocks;
}

interface NatsExample {
  readonly verb: 'pub' | 'req';
  readonly subject: string;
  readonly payload: string;
  readonly line: number;
}

/** `nats pub <subject> '<json>'` and `nats req <subject> '<json>'` lines of the shell blocks. */
function natsExamples(blocks: readonly Block[]): NatsExample[] {
  const examples: NatsExample[] = [];
  for (const block of blocks.filter((b) => b.language === 'sh')) {
    block.body.split('\n').forEach((text, offset) => {
      const match = /\bnats (pub|req) (\S+) '([^']*)'/.exec(text);
      if (match) examples.push({ verb: match[1] as 'pub' | 'req', subject: match[2]!, payload: match[3]!, line: block.line + offset });
    });
  }
  return examples;
}

const requestSchemas: Record<string, Schema<unknown>> = {
  'catalog.list': CatalogListRequest,
  'catalog.describe': CatalogDescribeRequest,
  'catalog.wal': CatalogWalRequest,
  'catalog.tree': CatalogTreeRequest,
};

function schemaForSubject(subject: string): Schema<unknown> {
  const request = requestSchemas[subject];
  if (request) return request;
  const parsed = parseCommandSubject(subject);
  if ('error' in parsed) throw new Error(`${subject}: ${parsed.error}`);
  return parsed.action === 'backup' ? RequestBackup : RequestRestore;
}

const markdown = readFileSync(README, 'utf8');
const blocks = fencedBlocks(markdown);

describe('README', () => {
  const yamlBlocks = blocks.filter((b) => b.language === 'yaml' || b.language === 'yml');
  const jsonBlocks = blocks.filter((b) => b.language === 'json');

  it('has the blocks this test reads', () => {
    expect(yamlBlocks.length).toBeGreaterThan(0);
    expect(natsExamples(blocks).length).toBeGreaterThan(5);
  });

  it.each(yamlBlocks.map((b) => [b.line, b] as const))('YAML block at line %i loads with the config loader', (_line, block) => {
    expect(() => parseConfig(block.body, `README.md:${block.line}`, {})).not.toThrow();
  });

  it.each(jsonBlocks.map((b) => [b.line, b] as const))('JSON block at line %i parses', (_line, block) => {
    expect(() => JSON.parse(block.body)).not.toThrow();
  });

  it.each(natsExamples(blocks).map((e) => [e.line, e] as const))('nats example at line %i is a valid message for its subject', (_line, example) => {
    const payload = decode(new TextEncoder().encode(example.payload));
    expect(() => schemaForSubject(example.subject).parse(payload)).not.toThrow();
  });
});
