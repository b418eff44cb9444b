// A recording publisher, a handler context and a config for the handler tests.
import type { Schema } from '@tidemark/contracts';
import { createLogger, type EventPublisher, type HandlerContext } from '@tidemark/runtime';

export interface Published {
  readonly subject: string;
  readonly event: Record<string, unknown>;
  readonly msgId: string | undefined;
}

export function recordingPublisher(): EventPublisher & { readonly published: Published[]; subjects(): string[] } {
  const published: Published[] = [];
  return {
    published,
    subjects: () => published.map((p) => p.subject),
    async publish<T>(subject: string, schema: Schema<T>, event: T, msgId?: string) {
      published.push({ subject, event: schema.parse(event) as Record<string, unknown>, msgId });
    },
  };
}

export function testContext(overrides: Partial<HandlerContext> = {}): HandlerContext & { workingCalls: number } {
  const ctx = {
    subject: 'backup.requested.qdrant.vectors',
    attempt: 1,
    maxDeliver: 5,
    streamSequence: 42,
    storedAt: new Date('2025-01-02T03:04:05Z'),
    headers: undefined,
    workingCalls: 0,
    working() {
      ctx.workingCalls++;
    },
    signal: new AbortController().signal,
    logger: createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }),
    ...overrides,
  };
  return ctx;
}

export const TEST_KEY_HEX = '11'.repeat(32);

export const qdrantConfigYaml = (url: string, extra = '') => `
storage: { type: fs, root: /tmp/unused }
defaults: { encrypt: true, verify: true, compression: gzip }
targets:
  - name: vectors
    engine: qdrant
    qdrant: { url: ${url}, incrementalField: updatedAt }
  - name: plain
    engine: qdrant
    encrypt: false
    qdrant: { url: ${url}, collections: [docs] }
${extra}`;
