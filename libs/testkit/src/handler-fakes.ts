// What the handler unit and integration tests share: a publisher that records what it is given
// (parsed by the event's schema, as the real one does) and a HandlerContext without a consumer.
import { ArtifactStored, type Manifest, type Schema } from '@tidemark/contracts';
import { artifactKeys } from '@tidemark/storage';
import { consumerPolicyOf, createLogger, isLastAttempt, settlementOf, type EventPublisher, type HandlerContext, type Outcome, type Settlement } from '@tidemark/runtime';

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

export type TestContext = HandlerContext & { progressCalls: number };

/** A HandlerContext for `subject` (first delivery of 5, silent logger) that counts `progress()` calls. */
export function testContext(subject: string, overrides: Partial<HandlerContext> = {}): TestContext {
  const attempt = overrides.attempt ?? 1;
  const maxDeliver = overrides.maxDeliver ?? 5;
  const ctx = {
    subject,
    attempt,
    maxDeliver,
    isLastAttempt: isLastAttempt(attempt, maxDeliver),
    streamSequence: 42,
    storedAt: new Date('2025-01-02T03:04:05Z'),
    headers: undefined,
    progressCalls: 0,
    progress() {
      ctx.progressCalls++;
    },
    signal: new AbortController().signal,
    logger: createLogger('test', { TIDEMARK_LOG_LEVEL: 'silent' }),
    ...overrides,
  };
  return ctx;
}

/**
 * What the consumer runner makes of a handler's outcome on delivery `ctx` (with the default
 * policy): a `failed` outcome runs its report and becomes nak or term, as in production.
 */
export async function settled(outcome: Outcome | Promise<Outcome>, ctx: Pick<HandlerContext, 'attempt' | 'maxDeliver' | 'signal' | 'logger'>): Promise<Settlement> {
  return settlementOf(await outcome, ctx, consumerPolicyOf(), ctx.logger);
}

/** `testContext` with a fixed default subject, for a package whose tests mostly handle one subject. */
export const testContextFor = (subject: string) => (overrides: Partial<HandlerContext> = {}): TestContext => testContext(subject, overrides);

/**
 * `handler` as the consumer runner runs it: the same arguments (the handler context last), its
 * outcome settled by `settled`. Handler tests assert on acks, naks and terms this way.
 */
export function settling<A extends unknown[], C extends Pick<HandlerContext, 'attempt' | 'maxDeliver' | 'signal' | 'logger'>>(
  handler: (...args: [...A, C]) => Promise<Outcome>,
): (...args: [...A, C]) => Promise<Settlement> {
  return (...args) => settled(handler(...args), args[args.length - 1] as C);
}

/** The artifact.stored event an agent publishes for a committed manifest (what the verifier consumes). */
export const storedEvent = (m: Manifest): ArtifactStored => ArtifactStored.parse({
  engine: m.engine, target: m.target, requestId: m.requestId, occurredAt: m.finishedAt, kind: m.kind, artifactId: m.id,
  manifestKey: artifactKeys(m.engine, m.target, m.id).manifest, storedBytes: m.data.storedBytes, sha256: m.data.sha256, verify: m.verify,
});
