// What the handler unit and integration tests share: a publisher that records what it is given
// (parsed by the event's schema, as the real one does) and a HandlerContext without a consumer.
import type { Schema } from '@tidemark/contracts';
import { createLogger, type EventPublisher, type HandlerContext } from '@tidemark/runtime';

export interface Published {
  readonly subject: string;
  readonly event: Record<string, unknown>;
  readonly msgId: string | undefined;
}

export interface RecordingPublisher extends EventPublisher {
  readonly published: Published[];
  subjects(): string[];
}

export function recordingPublisher(): RecordingPublisher {
  const published: Published[] = [];
  return {
    published,
    subjects: () => published.map((p) => p.subject),
    async publish<T>(subject: string, schema: Schema<T>, event: T, msgId?: string) {
      published.push({ subject, event: schema.parse(event) as Record<string, unknown>, msgId });
    },
  };
}

export type TestContext = HandlerContext & { workingCalls: number };

/** A HandlerContext for `subject` (first delivery of 5, silent logger) that counts `working()` calls. */
export function testContext(subject: string, overrides: Partial<HandlerContext> = {}): TestContext {
  const ctx = {
    subject,
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

/** `testContext` with a fixed default subject, for a package whose tests mostly handle one subject. */
export const testContextFor = (subject: string) => (overrides: Partial<HandlerContext> = {}): TestContext => testContext(subject, overrides);
